package sandbox

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// fsmonitorPaths splits a version 2 answer into its token and sorted paths.
func fsmonitorPaths(t *testing.T, out []byte) (string, []string) {
	t.Helper()
	if len(out) == 0 || out[len(out)-1] != 0 {
		t.Fatalf("answer %q does not end in NUL", out)
	}
	parts := strings.Split(string(out[:len(out)-1]), "\x00")
	paths := parts[1:]
	sort.Strings(paths)
	return parts[0], paths
}

func TestFSMonitorListsUpperLayer(t *testing.T) {
	upper := t.TempDir()
	for _, d := range []string{".git/refs/heads", "src/deep", "gone"} {
		if err := os.MkdirAll(filepath.Join(upper, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{".git/HEAD", "src/deep/a.go", "top.txt", "name\nwith newline"} {
		if err := os.WriteFile(filepath.Join(upper, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A link to outside is listed by name and never followed.
	if err := os.Symlink("/", filepath.Join(upper, "src/root")); err != nil {
		t.Fatal(err)
	}
	out, err := FSMonitorList(upper, t.TempDir(), fsmonitorToken, 100)
	if err != nil {
		t.Fatal(err)
	}
	token, paths := fsmonitorPaths(t, out)
	if token != fsmonitorToken {
		t.Errorf("token %q, want %q", token, fsmonitorToken)
	}
	// Directories are "dir/" when the overlay xattr cannot be read (tmpfs without user xattrs)
	// or is set; otherwise by name. Both are correct answers for git; accept either.
	var norm []string
	for _, p := range paths {
		if n := strings.TrimSuffix(p, "/"); len(norm) == 0 || norm[len(norm)-1] != n {
			norm = append(norm, n)
		}
	}
	want := []string{"gone", "name\nwith newline", "src", "src/deep", "src/deep/a.go", "src/root", "top.txt"}
	if strings.Join(norm, "|") != strings.Join(want, "|") {
		t.Errorf("paths %q, want %q", paths, want)
	}
	for _, p := range paths {
		if strings.HasPrefix(p, ".git") {
			t.Errorf("git's own directory listed: %q", p)
		}
	}
}

func TestFSMonitorOpaqueDirectory(t *testing.T) {
	upper := t.TempDir()
	dir := filepath.Join(upper, "remade")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := setXattr(dir, overlayOpaque, "y"); err != nil {
		t.Fatalf("set %s on %s (the test needs user xattrs on TMPDIR): %v", overlayOpaque, dir, err)
	}
	out, err := FSMonitorList(upper, t.TempDir(), fsmonitorToken, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, paths := fsmonitorPaths(t, out); strings.Join(paths, "|") != "remade|remade/" {
		t.Errorf("paths %q, want [remade remade/]: the directory replaced whatever the commit had there", paths)
	}
}

func TestFSMonitorBounded(t *testing.T) {
	upper := t.TempDir()
	for i := 0; i < 5; i++ {
		if err := os.WriteFile(filepath.Join(upper, string(rune('a'+i))), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := FSMonitorList(upper, t.TempDir(), fsmonitorToken, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, paths := fsmonitorPaths(t, out); strings.Join(paths, "|") != "/" {
		t.Errorf("paths %q past the bound, want [/]", paths)
	}
	out, err = FSMonitorList(upper, t.TempDir(), fsmonitorToken, 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, paths := fsmonitorPaths(t, out); len(paths) != 5 {
		t.Errorf("paths %q within the bound, want 5", paths)
	}
}

func TestFSMonitorLowerDirectoryReplaced(t *testing.T) {
	upper, lower := t.TempDir(), t.TempDir()
	for _, d := range []string{"was-dir", "deleted-dir", "kept-dir"} {
		if err := os.MkdirAll(filepath.Join(lower, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(lower, d, "f"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(lower, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A file where the commit had a directory; a stand-in for the whiteout of a deleted
	// directory (any non-directory counts alike); a file edited in place; a file added to a
	// directory the commit has.
	for _, f := range []string{"was-dir", "deleted-dir", "file"} {
		if err := os.WriteFile(filepath.Join(upper, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(upper, "kept-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(upper, "kept-dir", "new"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := FSMonitorList(upper, lower, "tok", 100)
	if err != nil {
		t.Fatal(err)
	}
	var norm []string
	_, paths := fsmonitorPaths(t, out)
	for _, p := range paths {
		if p != "kept-dir/" { // listed too where the xattr cannot be read: harmless
			norm = append(norm, p)
		}
	}
	want := "deleted-dir|deleted-dir/|file|kept-dir|kept-dir/new|was-dir|was-dir/"
	if got := strings.Join(norm, "|"); got != want {
		t.Errorf("paths %q, want %q", got, want)
	}
}

func TestFSMonitorMain(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := FSMonitorMain([]string{"1", "tok"}, &stdout, &stderr); code == 0 || stdout.Len() != 0 {
		t.Errorf("version 1: exit %d, stdout %q; want failure and no answer", code, stdout.String())
	}
	// Outside /workspace (here, or a repository an agent cloned elsewhere) the upper layer says
	// nothing about the work tree: the answer is "everything", with git's own token.
	if wd, _ := os.Getwd(); wd == WorkspacePath {
		t.Fatalf("the test runs in %s", WorkspacePath)
	}
	stdout.Reset()
	if code := FSMonitorMain([]string{"2", "tok"}, &stdout, &stderr); code != 0 || stdout.String() != "tok\x00/\x00" {
		t.Errorf("elsewhere: exit %d, stdout %q; want tok and everything", code, stdout.String())
	}
	if _, err := FSMonitorList(filepath.Join(t.TempDir(), "missing"), t.TempDir(), "tok", 10); err == nil {
		t.Error("missing upper layer: no error")
	}
	if _, err := FSMonitorList(t.TempDir(), filepath.Join(t.TempDir(), "missing"), "tok", 10); err == nil {
		t.Error("missing lower layer: no error")
	}
}

func setXattr(path, name, value string) error {
	return syscall.Setxattr(path, name, []byte(value), 0)
}
