package workspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// richRepo is a source with what a clone must carry over: branches both packed and loose, a
// lightweight and an annotated tag, a ref clone does not copy, and a non-default HEAD branch.
func richRepo(t *testing.T) (string, string) {
	t.Helper()
	src, head := newRepo(t, map[string]string{"a.txt": "a\n", "dir/b.txt": "b\n"})
	testGit(t, src, "tag", "v1")
	testGit(t, src, "tag", "-a", "v2", "-m", "release 2")
	testGit(t, src, "branch", "packed-branch")
	testGit(t, src, "pack-refs", "--all")
	testGit(t, src, "branch", "loose-branch")
	testGit(t, src, "update-ref", "refs/pull/7/head", head)
	writeFiles(t, src, map[string]string{"a.txt": "a2\n"})
	testGit(t, src, "commit", "-q", "-am", "second")
	return src, testGit(t, src, "rev-parse", "HEAD")
}

// TestCloneLocalMatchesGitClone checks the workspace the runner writes itself against what
// `git clone --local --no-checkout` and `git checkout -b` make of the same source.
func TestCloneLocalMatchesGitClone(t *testing.T) {
	src, head := richRepo(t)
	if err := cloneable(filepath.Join(src, ".git")); err != nil {
		t.Fatalf("the source would go to git's clone: %v", err)
	}
	m := newManager(t)
	w, err := m.Create(context.Background(), Source{RepoDir: src, SHA: head}, "run1", "job", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(src, ".git", "shallow")); err == nil {
		t.Fatal("the source is shallow: the test would check git's clone against itself")
	}

	ref := filepath.Join(t.TempDir(), "ref")
	testGit(t, t.TempDir(), "clone", "-q", "--local", "--no-checkout", src, ref)
	testGit(t, ref, "config", "remote.origin.url", "https://invalid.agentrunner/local-source")
	testGit(t, ref, "checkout", "-q", "--no-track", "-b", w.Branch(), head)

	for _, args := range [][]string{
		{"for-each-ref", "--format=%(refname) %(objectname) %(objecttype) %(symref)"},
		{"branch", "-vv"},
		{"status", "--porcelain=v2", "--branch"},
		{"config", "--local", "--get-regexp", `^(remote|branch|core\.bare|core\.repositoryformatversion)`},
		{"describe", "--tags"},
		{"log", "--oneline", "origin/HEAD"},
	} {
		got, want := testGit(t, w.Path(), args...), testGit(t, ref, args...)
		if got != want {
			t.Errorf("git %s:\n got %q\nwant %q", strings.Join(args, " "), got, want)
		}
	}
	testGit(t, w.Path(), "fsck", "--strict", "--no-dangling")
	if got := readTree(t, w.Path()); got["a.txt"] != "a2\n" || got["dir/b.txt"] != "b\n" {
		t.Errorf("working tree = %v", got)
	}
}

// TestLinkTreeSharesFiles: objects are hard links to the source's, not copies (whether a
// workspace keeps a link is prepareOwnership's decision), and git's temporary files stay out.
func TestLinkTreeSharesFiles(t *testing.T) {
	src, _ := richRepo(t)
	objects := filepath.Join(src, ".git", "objects")
	writeFiles(t, objects, map[string]string{".tmp-pack": "partial", "pack/.hidden": "x", "maintenance.lock": "",
		"pack/tmp_pack_Ab12": "partial", "incoming-x1/pack/p.pack": "quarantined"})
	dst := filepath.Join(t.TempDir(), "objects")
	if vanished, err := linkTree(objects, dst); err != nil || len(vanished) > 0 {
		t.Fatalf("linkTree = %v, %v", vanished, err)
	}
	n := 0
	err := filepath.WalkDir(objects, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(objects, p)
		b, statErr := os.Stat(filepath.Join(dst, rel))
		if transient(d.Name()) || strings.Contains(rel, "incoming-") {
			if statErr == nil {
				t.Errorf("%s was copied", rel)
			}
			return nil
		}
		a, _ := d.Info()
		if statErr != nil || !os.SameFile(a, b) {
			t.Errorf("%s is not a hard link to the source's: %v", rel, statErr)
		}
		n++
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("walked %d objects: %v", n, err)
	}
}

// TestCloneFallsBackToGit covers the sources cloneLocal leaves to git: a shallow one and one
// borrowing objects through alternates. The workspace is complete either way.
func TestCloneFallsBackToGit(t *testing.T) {
	src, head := richRepo(t)
	shallow := filepath.Join(t.TempDir(), "shallow")
	testGit(t, t.TempDir(), "clone", "-q", "--depth", "1", "file://"+src, shallow)
	shared := filepath.Join(t.TempDir(), "shared")
	testGit(t, t.TempDir(), "clone", "-q", "--shared", src, shared)

	for name, dir := range map[string]string{"shallow": shallow, "alternates": shared} {
		t.Run(name, func(t *testing.T) {
			if err := cloneable(filepath.Join(dir, ".git")); !errors.Is(err, errCloneByGit) {
				t.Fatalf("cloneable = %v, want errCloneByGit", err)
			}
			w, err := newManager(t).Create(context.Background(), Source{RepoDir: dir, SHA: head}, "run1", "job", nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := testGit(t, w.Path(), "rev-parse", "HEAD"); got != head {
				t.Errorf("HEAD = %s, want %s", got, head)
			}
			if got := testGit(t, w.Path(), "symbolic-ref", "HEAD"); got != "refs/heads/"+w.Branch() {
				t.Errorf("HEAD is %s", got)
			}
			if got := readTree(t, w.Path()); got["a.txt"] != "a2\n" {
				t.Errorf("working tree = %v", got)
			}
		})
	}
}

func TestCloneableRefusesRepositoryExtensions(t *testing.T) {
	src, _ := newRepo(t, map[string]string{"a": "a"})
	gitDir := filepath.Join(src, ".git")
	if err := cloneable(gitDir); err != nil {
		t.Fatalf("a plain repository: %v", err)
	}
	testGit(t, src, "config", "include.path", "/dev/null")
	if err := cloneable(gitDir); !errors.Is(err, errCloneByGit) {
		t.Fatalf("with an include: %v, want errCloneByGit", err)
	}
	testGit(t, src, "config", "--unset", "include.path")
	if err := cloneable(gitDir); err != nil {
		t.Fatalf("after the include is gone: %v", err)
	}
	testGit(t, src, "config", "core.repositoryformatversion", "1")
	testGit(t, src, "config", "extensions.worktreeConfig", "true")
	if err := cloneable(gitDir); !errors.Is(err, errCloneByGit) {
		t.Fatalf("with extensions: %v, want errCloneByGit", err)
	}
}

func TestReadRefsRejectsGarbage(t *testing.T) {
	src, _ := newRepo(t, map[string]string{"a": "a"})
	gitDir := filepath.Join(src, ".git")
	if err := os.WriteFile(filepath.Join(gitDir, "packed-refs"), []byte("# pack-refs with: sorted \nnot-a-sha refs/heads/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readRefs(gitDir); err == nil || !strings.Contains(err.Error(), "not-a-sha") {
		t.Fatalf("readRefs = %v, want the bad line named", err)
	}
	// The workspace still comes out right: git's clone takes over.
	if err := os.Remove(filepath.Join(gitDir, "packed-refs")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gitDir, "refs", "heads", "broken"), []byte("zzz\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readRefs(gitDir); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("readRefs = %v, want the bad loose ref named", err)
	}
}

// TestStartReturnsBeforeTheFill checks the contract the sandbox relies on: Start leaves an
// empty, existing working tree directory (a container can be created on it), Ready waits for
// the fill, and Remove stops a fill in progress and leaves nothing behind.
func TestStartReturnsBeforeTheFill(t *testing.T) {
	src, head := newRepo(t, map[string]string{"a.txt": "a\n"})
	m := newManager(t)
	ctx := context.Background()

	w, err := m.Start(ctx, Source{RepoDir: src, SHA: head}, "run1", "job", nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(w.Path()); err != nil || !fi.IsDir() {
		t.Fatalf("the working tree directory does not exist after Start: %v", err)
	}
	if err := w.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readTree(t, w.Path()); got["a.txt"] != "a\n" {
		t.Fatalf("after Ready the working tree is %v", got)
	}
	if err := w.Remove(ctx); err != nil {
		t.Fatal(err)
	}

	// Ready gives up with its context; the fill goes on for Remove to stop.
	w2, err := m.Start(ctx, Source{RepoDir: src, SHA: head}, "run1", "job2", nil)
	if err != nil {
		t.Fatal(err)
	}
	expired, cancel := context.WithCancel(ctx)
	cancel()
	if err := w2.Ready(expired); !errors.Is(err, context.Canceled) {
		t.Errorf("Ready with a cancelled context = %v", err)
	}
	if err := w2.Remove(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w2.Remove(ctx); err != nil {
		t.Fatalf("a second Remove: %v", err)
	}
	m.Close()
	if _, err := os.Stat(filepath.Join(m.Root(), "run1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run directory is still there: %v", err)
	}

	// A fill that fails reports through Ready, and Create leaves nothing behind.
	m2 := newManager(t)
	broken := filepath.Join(t.TempDir(), "broken")
	testGit(t, t.TempDir(), "clone", "-q", src, broken)
	// A first workspace makes the Manager remember the commit, so that Start resolves it
	// without git; then the objects go, and only the fill finds out.
	w3, err := m2.Start(ctx, Source{RepoDir: broken, SHA: head}, "run2", "job", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = w3.Ready(ctx)
	_ = w3.Remove(ctx)
	if err := os.RemoveAll(filepath.Join(broken, ".git", "objects")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(broken, ".git", "objects"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = m2.Create(ctx, Source{RepoDir: broken, SHA: head}, "run2", "job", nil)
	if err == nil || !strings.Contains(err.Error(), `create workspace for job "job"`) {
		t.Fatalf("Create from a source without objects = %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(m2.Root(), "run2")); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a failed Create left its run directory behind")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// FuzzReadRefs: whatever a source's packed-refs holds, readRefs returns an error or only
// branches and tags with full object ids; it never panics.
func FuzzReadRefs(f *testing.F) {
	f.Add([]byte("# pack-refs with: peeled fully-peeled sorted \n" +
		"9b611d4d6dce4896e9fb870334aa67a9f93a64ca refs/heads/main\n" +
		"00edb3c093de30efbaadb9e19d72523241cf4836 refs/tags/v2\n" +
		"^9b611d4d6dce4896e9fb870334aa67a9f93a64ca\n" +
		"9b611d4d6dce4896e9fb870334aa67a9f93a64ca refs/pull/7/head\n"))
	f.Add([]byte("9b611d4d6dce4896e9fb870334aa67a9f93a64ca refs/heads/a b\n\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, packed []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "packed-refs"), packed, 0o644); err != nil {
			t.Fatal(err)
		}
		refs, err := readRefs(dir)
		if err != nil {
			return
		}
		for name, sha := range refs {
			if !wantRef(name) || !validRefName(name) || !shaRE.MatchString(sha) {
				t.Fatalf("readRefs returned %q → %q", name, sha)
			}
		}
	})
}

// TestLinkObjectsWhileGitWorksOnTheSource: lock and temporary files come and go in a source's
// object store while a fetch or maintenance runs there (CI caught a maintenance.lock vanishing
// mid-walk); linking never fails for them.
func TestLinkObjectsWhileGitWorksOnTheSource(t *testing.T) {
	src, _ := richRepo(t)
	objects := filepath.Join(src, ".git", "objects")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			for _, name := range []string{"maintenance.lock", "pack/tmp_pack_x", "info/commit-graphs.lock"} {
				p := filepath.Join(objects, name)
				_ = os.MkdirAll(filepath.Dir(p), 0o755)
				_ = os.WriteFile(p, []byte{byte(i)}, 0o644)
				_ = os.Remove(p)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	for i := range 200 {
		dst := filepath.Join(t.TempDir(), "objects")
		if err := linkObjects(objects, dst); err != nil {
			t.Fatalf("link %d: %v", i, err)
		}
	}
}

func TestValidRefName(t *testing.T) {
	for name, want := range map[string]bool{
		"refs/heads/main": true, "refs/heads/feature/x-1": true, "refs/tags/v1.2.3": true, "refs/heads/ünïcode": true,
		"refs/heads/a\nb": false, "refs/heads/a b": false, "refs/heads/a..b": false, "refs/heads/a~1": false,
		"refs/heads/a^": false, "refs/heads/a:b": false, "refs/heads/a?": false, "refs/heads/a*": false,
		"refs/heads/a[": false, "refs/heads/a\\b": false, "refs/heads/.hidden": false, "refs/heads/x.lock": false,
		"refs/heads/a@{1}": false, "refs/heads/": false, "refs/heads/a.": false, "refs/heads//a": false,
		"refs/heads/a\x7f": false, "@": false, "": false,
	} {
		if got := validRefName(name); got != want {
			t.Errorf("validRefName(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestSourceWithAnInvalidRefFileStillClones: a file under refs/heads that git would not take
// for a ref (here one whose name holds a newline, which would corrupt packed-refs) sends the
// clone to git, which ignores it; the workspace is complete.
func TestSourceWithAnInvalidRefFileStillClones(t *testing.T) {
	src, head := newRepo(t, map[string]string{"a.txt": "a\n"})
	bad := filepath.Join(src, ".git", "refs", "heads", "bad\ninjected")
	if err := os.WriteFile(bad, []byte(head+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readRefs(filepath.Join(src, ".git")); err == nil {
		t.Fatal("readRefs took a ref name with a newline")
	}
	w, err := newManager(t).Create(context.Background(), Source{RepoDir: src, SHA: head}, "run1", "job", nil)
	if err != nil {
		t.Fatal(err)
	}
	refs := testGit(t, w.Path(), "for-each-ref", "--format=%(refname)")
	if strings.Contains(refs, "injected") || !strings.Contains(refs, "refs/remotes/origin/main") {
		t.Errorf("refs of the workspace:\n%s", refs)
	}
}
