package gittest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agentrunner/agentrunner/internal/gittest"
)

func TestRepoCommitsFilesOnMainAndReadTreeReadsThemBack(t *testing.T) {
	files := map[string]string{"a.txt": "a\n", "dir/sub/b.txt": "b\n"}
	dir, head := gittest.Repo(t, files)
	if len(head) != 40 {
		t.Errorf("head = %q, want a 40-hex SHA", head)
	}
	if got := gittest.Git(t, dir, "rev-parse", "main"); got != head {
		t.Errorf("main = %q, want %q", got, head)
	}
	if got := gittest.Git(t, dir, "log", "-1", "--format=%an <%ae> %cn <%ce>"); got != "t <t@example.com> t <t@example.com>" {
		t.Errorf("author and committer = %q", got)
	}
	if status := gittest.Git(t, dir, "status", "--porcelain"); status != "" {
		t.Errorf("uncommitted changes:\n%s", status)
	}
	if diff := cmp.Diff(files, gittest.ReadTree(t, dir)); diff != "" {
		t.Errorf("ReadTree (-want +got):\n%s", diff)
	}
}

func TestReadTreeSkipsGitAndNonRegularFiles(t *testing.T) {
	dir := t.TempDir()
	gittest.WriteFiles(t, dir, map[string]string{"x": "1", ".git/config": "ignored", "d/.git/HEAD": "ignored too"})
	if err := os.Symlink("x", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"x": "1"}, gittest.ReadTree(t, dir)); diff != "" {
		t.Errorf("ReadTree (-want +got):\n%s", diff)
	}
}

func TestGitIgnoresTheGlobalConfig(t *testing.T) {
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte("[gittest]\n\tmarker = global\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	dir, _ := gittest.Repo(t, map[string]string{"a": "a"})
	if got := gittest.Git(t, dir, "config", "--list"); strings.Contains(got, "gittest.marker") {
		t.Errorf("git read the global config:\n%s", got)
	}
}
