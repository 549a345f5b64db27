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

// A run that starts again after its daemon was killed finds its old workspaces gone.
func TestRemoveRunClearsAnEarlierAttempt(t *testing.T) {
	src, head := newRepo(t, map[string]string{"a.txt": "a\n"})
	m := newManager(t)
	if _, err := m.Create(t.Context(), Source{RepoDir: src, SHA: head}, "run-1", "job", nil); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveRun(t.Context(), "run-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(t.Context(), Source{RepoDir: src, SHA: head}, "run-1", "job", nil); err != nil {
		t.Fatalf("the retried attempt cannot create its workspace: %v", err)
	}
	if err := m.RemoveRun(t.Context(), "../x"); err == nil {
		t.Error("RemoveRun accepted a run id that is not a directory name")
	}
}
