package safefile

import (
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
)

func TestDefuseRemovesWhatIsNotPlainData(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "host-secret")
	if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(name string, mode os.FileMode) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	write("report.md", 0o644)
	write("tool.sh", 0o4755)
	write("nested/keep.txt", 0o600)
	write("nested/.git/config", 0o644) // core.fsmonitor would run on `git status` here
	write("sub/.GIT", 0o644)
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "nested", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	removed, err := Defuse(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Removed{
		{"link", "a symlink"},
		{"nested/.git", "a git directory"},
		{"nested/fifo", "a named pipe"},
		{"sub/.GIT", "a git link file"},
	}
	if !reflect.DeepEqual(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	for _, name := range []string{"link", "nested/.git", "nested/fifo", "sub/.GIT"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", name, err)
		}
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "secret" {
		t.Errorf("the link's target was touched: %q, %v", b, err)
	}
	for name, mode := range map[string]os.FileMode{"report.md": 0o644, "tool.sh": 0o644, "nested/keep.txt": 0o644, "nested": 0o755 | os.ModeDir} {
		info, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode() & (os.ModeDir | os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky); got != mode {
			t.Errorf("%s has mode %v, want %v", name, got, mode)
		}
	}
}
