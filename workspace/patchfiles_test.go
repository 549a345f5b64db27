package workspace

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// PatchFiles reads back every kind of change Changes puts in a patch: edits, additions,
// deletions, renames, binary files, mode changes, odd names git quotes, and symlinks with
// their targets.
func TestPatchFilesReadsWhatChangesWrites(t *testing.T) {
	t.Parallel()
	m := newManager(t)
	src, sha := newRepo(t, baseFiles)
	w, err := m.Create(t.Context(), Source{RepoDir: src, SHA: sha}, "run-patchfiles", "job", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Remove(t.Context()) })
	p := w.Path()
	writeFiles(t, p, map[string]string{
		"README.md":           "changed\n",
		"with space.txt":      "s\n",
		"tab\there/é.txt":     "q\n",
		"new.bin":             binaryContent,
		".github/workflows/x": "on: push\n",
	})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Remove(filepath.Join(p, "docs/guide.txt")))
	must(os.Rename(filepath.Join(p, "src/util.go"), filepath.Join(p, "src/util moved.go")))
	must(os.Chmod(filepath.Join(p, "src/main.go"), 0o755))
	must(os.Symlink("/etc/passwd", filepath.Join(p, "link")))
	must(os.Symlink("../../x", filepath.Join(p, "src/up")))

	c, err := w.Changes(t.Context(), ChangesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	patch := patchOf(t, c)
	got, err := PatchFiles(patch)
	if err != nil {
		t.Fatalf("%v\n%s", err, patch)
	}
	want := []PatchFile{
		{Path: ".github/workflows/x", Mode: "100644"},
		{Path: "README.md", Mode: "100644"},
		{Path: "docs/guide.txt"},
		{Path: "link", Mode: "120000", Target: "/etc/passwd"},
		{Path: "new.bin", Mode: "100644"},
		{Path: "src/main.go", Mode: "100755"},
		{Path: "src/up", Mode: "120000", Target: "../../x"},
		{Path: "src/util moved.go", OldPath: "src/util.go"}, // a pure rename keeps its mode unsaid
		{Path: "tab\there/é.txt", Mode: "100644"},
		{Path: "with space.txt", Mode: "100644"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("PatchFiles (-want +got):\n%s\npatch:\n%s", d, patch)
	}
	if _, err := PatchFiles([]byte("diff --git \"a/unterminated b/x\n")); err == nil {
		t.Error("an unreadable header was accepted")
	}
}
