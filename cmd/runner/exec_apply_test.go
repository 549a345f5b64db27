package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/internal/dockertest"
)

// applyRepo is a repository whose one routine's agent runs argv and keeps its changes.
func applyRepo(t *testing.T, argv string) string {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dockertest.Client(t)
	dockertest.TestAgentImage(t)
	repo := gitRepo(t, map[string]string{
		"README.md": "old\n",
		".agents/fix.yaml": "on: push\ndefaults: {image: agentrunner/testagent:dev, timeout: 2m}\n" +
			"agents:\n  edit:\n    command: [\"/testagent\", \"write\", \"README.md=new\\n\", " + argv + "]\n    changes: keep\n",
	})
	chdir(t, repo)
	return repo
}

// --apply alone lists a patch's sensitive files (a workflow, a symlink out of the repository)
// and applies nothing; --apply=all applies it.
func TestExecApplyHoldsBackSensitivePatches(t *testing.T) {
	repo := applyRepo(t, `"write", ".github/workflows/x.yml=on: push\n", "symlink", "link=/etc/passwd"`)
	code, out, errOut := runCLI(t, "exec", "--progress", "plain", "--apply")
	if code != 1 {
		t.Fatalf("--apply with sensitive files: exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{".github/workflows/x.yml (GitHub workflows", "link (symlink to /etc/passwd, outside the repository)", "--apply=all", "git apply"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "README.md")); string(b) != "old\n" {
		t.Errorf("README.md = %q: part of a held-back patch was applied", b)
	}
	for _, p := range []string{".github", "link"} {
		if _, err := os.Lstat(filepath.Join(repo, p)); err == nil {
			t.Errorf("%s exists: a held-back patch was applied", p)
		}
	}

	code, out, errOut = runCLI(t, "exec", "--progress", "plain", "--apply=all")
	if code != 0 {
		t.Fatalf("--apply=all: exit %d\n%s\n%s", code, out, errOut)
	}
	if target, err := os.Readlink(filepath.Join(repo, "link")); err != nil || target != "/etc/passwd" {
		t.Errorf("--apply=all: link → %q (%v)", target, err)
	}
	if _, err := os.Stat(filepath.Join(repo, ".github", "workflows", "x.yml")); err != nil {
		t.Errorf("--apply=all: %v", err)
	}
	if !strings.Contains(errOut, ".github/workflows/x.yml") {
		t.Errorf("--apply=all applies but must still list what is sensitive:\n%s", errOut)
	}
}

// No patch may write the runner's own results, not even with --apply=all.
func TestExecApplyRefusesPatchesIntoTheRunsDirectory(t *testing.T) {
	repo := applyRepo(t, `"write", ".agents/.runs/x=forged\n"`)
	code, out, errOut := runCLI(t, "exec", "--progress", "plain", "--apply=all")
	if code != 1 || !strings.Contains(errOut, ".agents/.runs/x") {
		t.Fatalf("exit %d, want 1 with the refused file named\n%s\n%s", code, out, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "README.md")); string(b) != "old\n" {
		t.Errorf("README.md = %q: part of a refused patch was applied", b)
	}
	if _, err := os.Stat(filepath.Join(repo, ".agents", ".runs", "x")); err == nil {
		t.Error(".agents/.runs/x was written")
	}
}

func TestExecApplyRejectsUnknownValues(t *testing.T) {
	repo := gitRepo(t, map[string]string{".agents/a.yaml": "on: push\ndefaults: {image: i}\nagents:\n  a: {command: [x]}\n"})
	chdir(t, repo)
	if code, _, errOut := runCLI(t, "exec", "--apply=some"); code != 2 || !strings.Contains(errOut, "--apply") {
		t.Errorf("--apply=some: exit %d, stderr %q", code, errOut)
	}
}
