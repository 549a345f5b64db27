package workspace

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agentrunner/agentrunner/internal/gittest"
)

// testGit runs git like a user would, outside the package's own runner, and fails the test on error.
func testGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := testGitAs(dir, nil, nil, args...)
	if err != nil {
		t.Fatalf("git %s in %s: %v", strings.Join(args, " "), dir, err)
	}
	return out
}

// testGitAs runs git in dir as cred (nil: the test's own user) with extra env.
func testGitAs(dir string, cred *syscall.Credential, env []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Test User", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test User", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_CONFIG_COUNT=2", "GIT_CONFIG_KEY_0=safe.directory", "GIT_CONFIG_VALUE_0=*",
		"GIT_CONFIG_KEY_1=init.defaultBranch", "GIT_CONFIG_VALUE_1=main",
	}, env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s", err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// writeFiles writes name → content below dir, creating directories.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	gittest.WriteFiles(t, dir, files)
}

// newRepo makes a repository with files committed on main and returns its directory and HEAD.
func newRepo(t testing.TB, files map[string]string) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	testGit(t, t.TempDir(), "init", "-q", dir)
	writeFiles(t, dir, files)
	testGit(t, dir, "add", "-A")
	testGit(t, dir, "commit", "-q", "-m", "initial")
	return dir, testGit(t, dir, "rev-parse", "HEAD")
}

func newManager(t testing.TB) *Manager {
	t.Helper()
	m, err := NewManager(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// binaryContent is content git treats as binary.
var binaryContent = string([]byte{0, 1, 2, 3, 0xff, 0xfe, 0, 'x', 0})

// applyPatch applies patch onto a fresh checkout of sha of repo and returns the checkout.
func applyPatch(t testing.TB, repo, sha string, patch []byte) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "check")
	testGit(t, t.TempDir(), "clone", "-q", "--no-checkout", repo, dir)
	testGit(t, dir, "checkout", "-q", "--detach", sha)
	p := filepath.Join(t.TempDir(), "p.patch")
	if err := os.WriteFile(p, patch, 0o644); err != nil {
		t.Fatal(err)
	}
	if len(patch) > 0 {
		testGit(t, dir, "apply", "--index", p)
	}
	return dir
}

// patchOf returns the content of c's patch file; nil when nothing changed.
func patchOf(t testing.TB, c *Changes) []byte {
	t.Helper()
	if c.PatchFile == "" {
		return nil
	}
	return mustRead(t, c.PatchFile)
}

// mustRead returns the content of file.
func mustRead(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readTree returns path → content of every file below dir except .git.
func readTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	return gittest.ReadTree(t, dir)
}

var execLookPath = exec.LookPath
