package main

import (
	"os"
	"os/exec"
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

// An agent plants an fsmonitor command, a hooks path, hooks and a filter driver in its
// workspace's .git and names the filter in .gitattributes: none of it runs on the host while
// the runner reads the changes back or applies them, and none of the .git part reaches the
// user's repository.
func TestExecNeverRunsWhatAnAgentPlantsInItsGitDir(t *testing.T) {
	markers := t.TempDir()
	cmdFor := func(name string) string { return "touch " + filepath.Join(markers, name) }
	repo := applyRepo(t, `"append", ".git/config=\n[core]\n\tfsmonitor = `+cmdFor("fsmonitor")+`\n\thooksPath = .git/evil\n[filter \"evil\"]\n\tclean = `+cmdFor("clean")+
		`\n\tsmudge = `+cmdFor("smudge")+`\n[diff \"evil\"]\n\ttextconv = `+cmdFor("textconv")+`\n", `+
		`"write", ".git/evil/post-index-change=#!/bin/sh\n`+cmdFor("hook")+`\n", "chmod", ".git/evil/post-index-change=755", `+
		`"write", ".git/hooks/post-checkout=#!/bin/sh\n`+cmdFor("hook2")+`\n", "chmod", ".git/hooks/post-checkout=755", `+
		`"write", ".gitattributes=* filter=evil diff=evil\n"`)
	code, out, errOut := runCLI(t, "exec", "--progress", "plain", "--apply=all")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, ".gitattributes (git attributes") {
		t.Errorf("the planted .gitattributes is not listed as sensitive:\n%s", errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "README.md")); string(b) != "new\n" {
		t.Errorf("README.md = %q, want the agent's edit applied", b)
	}
	cfg, err := os.ReadFile(filepath.Join(repo, ".git", "config"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"fsmonitor", "hooksPath", "evil"} {
		if strings.Contains(string(cfg), bad) {
			t.Errorf("the user's .git/config holds the agent's %q:\n%s", bad, cfg)
		}
	}
	if _, err := os.Stat(filepath.Join(repo, ".git", "evil")); err == nil {
		t.Error("the agent's hooks reached the user's .git")
	}
	status := exec.Command("git", "status", "--short")
	status.Dir = repo
	if out, err := status.CombinedOutput(); err != nil {
		t.Fatalf("git status in the user's repository: %v\n%s", err, out)
	}
	if ran, _ := os.ReadDir(markers); len(ran) > 0 {
		t.Errorf("commands the agent planted ran on the host: %v", ran)
	}
}
