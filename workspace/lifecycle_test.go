package workspace

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIncludeUncommitted(t *testing.T) {
	t.Parallel()
	src, head := newRepo(t, baseFiles)
	// The user's working tree: a tracked edit, a staged edit, a deletion, an untracked file, an
	// ignored file.
	writeFiles(t, src, map[string]string{
		"README.md":       "edited but not committed\n",
		"src/main.go":     "package main // staged\n",
		"untracked.txt":   "new\n",
		"secret.log":      "ignored\n",
		"dir/new/deep.md": "deep\n",
	})
	testGit(t, src, "add", "src/main.go")
	if err := os.Remove(filepath.Join(src, "docs/guide.txt")); err != nil {
		t.Fatal(err)
	}
	statusBefore := testGit(t, src, "status", "--porcelain")
	indexBefore, _ := os.ReadFile(filepath.Join(src, ".git", "index"))

	m := newManager(t)
	w1, err := m.Create(t.Context(), Source{RepoDir: src, IncludeUncommitted: true}, "run-u", "one", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Remove(t.Context())
	w2, err := m.Create(t.Context(), Source{RepoDir: src, SHA: head, IncludeUncommitted: true}, "run-u", "two", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Remove(t.Context())

	if w1.BaseSHA() == head {
		t.Fatalf("BaseSHA is HEAD; the uncommitted state was not recorded")
	}
	if w1.BaseSHA() != w2.BaseSHA() {
		t.Errorf("two jobs over the same state got different bases %s and %s", w1.BaseSHA(), w2.BaseSHA())
	}
	if parent := testGit(t, w1.Path(), "rev-parse", "HEAD^"); parent != head {
		t.Errorf("base commit's parent = %s, want HEAD %s", parent, head)
	}
	want := readTree(t, src)
	delete(want, "secret.log")
	if diff := cmp.Diff(want, readTree(t, w1.Path())); diff != "" {
		t.Errorf("workspace differs from the source's working tree (-source +workspace):\n%s", diff)
	}
	// The source is untouched: same status, same index.
	if got := testGit(t, src, "status", "--porcelain"); got != statusBefore {
		t.Errorf("source status changed:\n%s\nwas\n%s", got, statusBefore)
	}
	if indexAfter, _ := os.ReadFile(filepath.Join(src, ".git", "index")); string(indexAfter) != string(indexBefore) {
		t.Errorf("source index changed")
	}
	// The workspace is clean and its changes cover only what the agent does.
	if st := testGit(t, w1.Path(), "status", "--porcelain"); st != "" {
		t.Errorf("workspace is dirty: %q", st)
	}
	writeFiles(t, w1.Path(), map[string]string{"agent.txt": "by the agent\n"})
	c, err := w1.Changes(t.Context(), ChangesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]FileChange{{Path: "agent.txt", Status: Added}}, c.Files); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	// A clean source gives HEAD itself.
	clean, cleanHead := newRepo(t, baseFiles)
	w3, err := m.Create(t.Context(), Source{RepoDir: clean, IncludeUncommitted: true}, "run-u", "three", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w3.Remove(t.Context())
	if w3.BaseSHA() != cleanHead {
		t.Errorf("clean source: BaseSHA = %s, want HEAD %s", w3.BaseSHA(), cleanHead)
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	src, _ := newRepo(t, baseFiles)
	m := newManager(t)
	owner, _ := agentUser()
	w, err := m.Create(t.Context(), Source{RepoDir: src}, "run-r", "job", owner)
	if err != nil {
		t.Fatal(err)
	}
	// An agent may leave read-only directories behind.
	writeFiles(t, w.Path(), map[string]string{"ro/file": "x"})
	if err := os.Chmod(filepath.Join(w.Path(), "ro"), 0o500); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := w.Remove(t.Context()); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if _, err := os.Stat(w.Path()); !os.IsNotExist(err) {
		t.Errorf("workspace still exists after Remove: %v", err)
	}
	if _, err := os.Stat(filepath.Join(m.Root(), "run-r")); !os.IsNotExist(err) {
		t.Errorf("empty run directory left after its last workspace was removed")
	}
	m.Close()
	if left := dirEntries(t, filepath.Join(m.Root(), trashDir)); len(left) != 0 {
		t.Errorf("trash not empty after Close: %v", left)
	}
	// The source still works: its objects were shared, never moved.
	testGit(t, src, "fsck", "--no-dangling")
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestSweep(t *testing.T) {
	t.Parallel()
	src, _ := newRepo(t, baseFiles)
	root := filepath.Join(t.TempDir(), "data")
	m1, err := NewManager(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"crashed-1", "crashed-2", "live"} {
		if _, err := m1.Create(t.Context(), Source{RepoDir: src}, id, "job", nil); err != nil {
			t.Fatal(err)
		}
	}
	// A crash in the middle of a background deletion leaves something in the trash.
	writeFiles(t, filepath.Join(root, trashDir, "half-deleted"), map[string]string{"a/b": "x"})
	// A new process starts and sweeps everything but the live run.
	m2, err := NewManager(root)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	removed, err := m2.Sweep(t.Context(), func(runID string) bool { return runID == "live" })
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if diff := cmp.Diff([]string{"crashed-1", "crashed-2"}, removed); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	left := dirEntries(t, root)
	if !slices.Contains(left, "live") || slices.Contains(left, "crashed-1") {
		t.Errorf("root after sweep: %v", left)
	}
	if trash := dirEntries(t, filepath.Join(root, trashDir)); len(trash) != 0 {
		t.Errorf("trash after sweep: %v", trash)
	}
	removed, err = m2.Sweep(t.Context(), nil)
	if err != nil || strings.Join(removed, ",") != "live" {
		t.Errorf("sweep all: removed %v, err %v", removed, err)
	}
}
