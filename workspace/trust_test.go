package workspace

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Files under the runner's own git home (XDG_CONFIG_HOME/git/ignore and git/attributes, git's
// default excludes and attributes files) must not change what a workspace's changes are: when
// that home sat inside the user's repository, an applied patch could write them and hide
// files from, or garble the diffs of, every later run.
func TestGitHomeFilesDoNotChangeChanges(t *testing.T) {
	t.Parallel()
	m := newManager(t)
	src, sha := newRepo(t, baseFiles)
	planted := map[string]string{
		"git/ignore":     "*.secret\n",
		"git/attributes": "*.txt -diff\n",
		".gitconfig":     "[core]\n\texcludesFile = " + filepath.Join(m.Root(), homeDir, "git", "ignore") + "\n",
	}
	writeFiles(t, filepath.Join(m.Root(), homeDir), planted)

	w, err := m.Create(t.Context(), Source{RepoDir: src, SHA: sha}, "run-home", "job", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Remove(t.Context()) })
	writeFiles(t, w.Path(), map[string]string{"key.secret": "s\n", "docs/guide.txt": "guide, rewritten\n"})

	c, err := w.Changes(t.Context(), ChangesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	patch := patchOf(t, c)
	var paths []string
	for _, f := range c.Files {
		paths = append(paths, f.Path)
	}
	if strings.Join(paths, ",") != "docs/guide.txt,key.secret" {
		t.Errorf("changed files = %v, want docs/guide.txt and key.secret: the git home's ignore file hid a file", paths)
	}
	if !strings.Contains(string(patch), "+guide, rewritten") {
		t.Errorf("the git home's attributes file changed the diff:\n%s", patch)
	}
}

// An agent owns its workspace's .git: hooks, an fsmonitor command and filter drivers it plants
// there must never run on the host when the runner reads the workspace's changes back.
func TestPlantedGitConfigNeverRunsOnTheHost(t *testing.T) {
	t.Parallel()
	m := newManager(t)
	src, sha := newRepo(t, baseFiles)
	w, err := m.Create(t.Context(), Source{RepoDir: src, SHA: sha}, "run-planted", "job", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Remove(t.Context()) })

	marker := filepath.Join(t.TempDir(), "ran")
	hook := "#!/bin/sh\necho \"$0\" >> " + marker + "\n"
	hooks := filepath.Join(w.Path(), ".git", "evil-hooks")
	for _, name := range []string{"pre-commit", "post-checkout", "post-index-change", "fsmonitor-watchman", "reference-transaction"} {
		writeFiles(t, hooks, map[string]string{name: hook})
		if err := os.Chmod(filepath.Join(hooks, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFiles(t, filepath.Join(w.Path(), ".git", "hooks"), map[string]string{name: hook})
		if err := os.Chmod(filepath.Join(w.Path(), ".git", "hooks", name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := os.OpenFile(filepath.Join(w.Path(), ".git", "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cfg.WriteString("[core]\n\tfsmonitor = " + filepath.Join(hooks, "fsmonitor-watchman") + "\n\thooksPath = " + hooks +
		"\n[filter \"evil\"]\n\tclean = " + filepath.Join(hooks, "pre-commit") + "\n\tsmudge = " + filepath.Join(hooks, "pre-commit") +
		"\n\trequired = true\n[diff \"evil\"]\n\ttextconv = " + filepath.Join(hooks, "pre-commit") + "\n")
	cfg.Close()
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, w.Path(), map[string]string{".gitattributes": "* filter=evil diff=evil\n", "README.md": "changed\n"})

	c, err := w.Changes(t.Context(), ChangesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	patch := patchOf(t, c)
	if !strings.Contains(string(patch), "+changed") {
		t.Errorf("the change is missing from the patch:\n%s", patch)
	}
	if b, err := os.ReadFile(marker); err == nil {
		t.Fatalf("a command the agent planted in .git ran on the host:\n%s", b)
	}
}
