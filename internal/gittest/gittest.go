// Package gittest holds helpers for tests that need real git repositories: a git runner
// isolated from the machine's git configuration, with a fixed author and committer, so that
// tests behave the same on every machine; a one-commit repository made from a map of files;
// and a reader that returns a working tree's files for comparison.
//
// It knows nothing about agentrunner's packages and imports only the standard library, so
// that any package's tests (including internal ones) can use it.
//
// Typical use:
//
//	dir, head := gittest.Repo(t, map[string]string{".agents/review.yaml": routine})
//	gittest.Git(t, dir, "checkout", "-q", "-b", "changes")
//	files := gittest.ReadTree(t, dir)
package gittest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// env is what Git adds to the test's environment: no global or system configuration, and a
// fixed author and committer.
var env = []string{
	"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
	"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
	"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
}

// Git runs `git -C dir args...` without the machine's global or system git configuration and
// as a fixed author and committer, and returns its output (stdout and stderr) with surrounding
// white space trimmed. It fails the test, with git's output, when git fails.
func Git(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// WriteFiles writes each path → content of files below dir (paths use forward slashes),
// creating directories as needed. It fails the test on error.
func WriteFiles(tb testing.TB, dir string, files map[string]string) {
	tb.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// Repo makes a new repository in a temporary directory, writes files into it, commits them on
// branch main, and returns the repository's directory and the commit's SHA.
func Repo(tb testing.TB, files map[string]string) (dir, head string) {
	tb.Helper()
	dir = filepath.Join(tb.TempDir(), "repo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	WriteFiles(tb, dir, files)
	Git(tb, dir, "init", "-q", "-b", "main")
	Git(tb, dir, "add", "-A")
	Git(tb, dir, "commit", "-q", "--allow-empty", "-m", "files")
	return dir, Git(tb, dir, "rev-parse", "HEAD")
}

// ReadTree returns path → content of every regular file below dir, leaving out any .git
// directory; paths are relative to dir, with forward slashes. It fails the test on error.
func ReadTree(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// PullRequestRemote makes a bare repository at dir standing in for GitHub: branch master holds
// baseFiles, branch `changes` adds headFiles on top. It returns the commits of both.
func PullRequestRemote(tb testing.TB, dir string, baseFiles, headFiles map[string]string) (base, head string) {
	tb.Helper()
	work := tb.TempDir()
	Git(tb, work, "init", "--quiet", "--bare", "-b", "master", dir)
	Git(tb, work, "init", "--quiet", "-b", "master")
	commit := func(files map[string]string, msg string) string {
		WriteFiles(tb, work, files)
		Git(tb, work, "add", "-A")
		Git(tb, work, "commit", "--quiet", "--allow-empty", "-m", msg)
		return Git(tb, work, "rev-parse", "HEAD")
	}
	base = commit(baseFiles, "base")
	Git(tb, work, "checkout", "--quiet", "-b", "changes")
	head = commit(headFiles, "head")
	Git(tb, work, "push", "--quiet", "file://"+dir, "master", "changes")
	return base, head
}

// DirSize is the total size of the regular files below dir: how much a repository's .git or
// object store grew.
func DirSize(tb testing.TB, dir string) int64 {
	tb.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
