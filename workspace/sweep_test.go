package workspace

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// A process killed while it merged or pushed leaves its temporary git home; the next Manager
// removes it, and never a live process's.
func TestNewManagerSweepsTempHomesOfDeadProcesses(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(os.TempDir(), tempHomePrefix+strconv.Itoa(cmd.Process.Pid)+"-test")
	live := filepath.Join(os.TempDir(), tempHomePrefix+strconv.Itoa(os.Getppid())+"-test")
	for _, d := range []string{dead, live} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.RemoveAll(dead); os.RemoveAll(live) })
	newManager(t)
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead process's git home is still there (stat: %v)", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a live process's git home was removed: %v", err)
	}
}
