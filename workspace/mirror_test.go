package workspace

import (
	"encoding/base64"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testToken = "ghs_TopSecretToken1234567890"

// newRemote makes a bare repository standing in for GitHub, with a branch, a tag and a pull
// request head, and returns its file:// URL, its path and the pull request's commit.
func newRemote(t *testing.T) (url, dir, prSHA string) {
	t.Helper()
	src, _ := newRepo(t, map[string]string{"a.txt": "a\n", ".agents/review.yaml": "name: review\n"})
	testGit(t, src, "tag", "v1")
	testGit(t, src, "checkout", "-q", "-b", "pr")
	writeFiles(t, src, map[string]string{"a.txt": "from a fork\n"})
	testGit(t, src, "commit", "-qam", "pr")
	prSHA = testGit(t, src, "rev-parse", "HEAD")
	dir = filepath.Join(t.TempDir(), "remote.git")
	testGit(t, t.TempDir(), "init", "-q", "--bare", dir)
	testGit(t, src, "push", "-q", dir, "main", "v1", "pr:refs/pull/7/head")
	return "file://" + dir, dir, prSHA
}

// assertNoToken fails when the token appears in any file below dir.
func assertNoToken(t *testing.T, dir string) {
	t.Helper()
	basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + testToken))
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), testToken) || strings.Contains(string(b), basic) {
			t.Errorf("token written to %s", p)
		}
		return nil
	})
}

func TestMirror(t *testing.T) {
	t.Parallel()
	url, remote, prSHA := newRemote(t)
	m := newManager(t)
	auth := Auth{Token: testToken}

	// Concurrent first fetches of one mirror are serialised and agree.
	var wg sync.WaitGroup
	dirs := make([]string, 3)
	errs := make([]error, 3)
	for i := range dirs {
		wg.Go(func() { dirs[i], errs[i] = m.Mirror(t.Context(), url, auth) })
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil {
			t.Fatalf("Mirror #%d: %v", i, errs[i])
		}
		if dirs[i] != dirs[0] {
			t.Fatalf("Mirror returned %s and %s for one URL", dirs[0], dirs[i])
		}
	}
	dir := dirs[0]
	if !strings.HasPrefix(dir, filepath.Join(m.Root(), "mirrors")+"/") {
		t.Errorf("mirror %s is not under root/mirrors", dir)
	}
	refs := testGit(t, dir, "for-each-ref", "--format=%(refname)")
	for _, want := range []string{"refs/heads/main", "refs/tags/v1", "refs/pull/7/head"} {
		if !strings.Contains(refs, want) {
			t.Errorf("mirror lacks %s; has\n%s", want, refs)
		}
	}
	// Updates arrive on the next call; deleted branches are pruned.
	work := filepath.Join(t.TempDir(), "work")
	testGit(t, t.TempDir(), "clone", "-q", remote, work)
	writeFiles(t, work, map[string]string{"b.txt": "b\n"})
	testGit(t, work, "add", "-A")
	testGit(t, work, "commit", "-qm", "more")
	testGit(t, work, "push", "-q", "origin", "main", "main:refs/heads/tmp")
	if _, err := m.Mirror(t.Context(), url, auth); err != nil {
		t.Fatal(err)
	}
	testGit(t, work, "push", "-q", "origin", ":refs/heads/tmp")
	if _, err := m.Mirror(t.Context(), url, auth); err != nil {
		t.Fatal(err)
	}
	if got, want := testGit(t, dir, "rev-parse", "main"), testGit(t, work, "rev-parse", "HEAD"); got != want {
		t.Errorf("mirror main = %s, want %s", got, want)
	}
	if strings.Contains(testGit(t, dir, "for-each-ref"), "refs/heads/tmp") {
		t.Errorf("deleted branch not pruned")
	}
	// A job can start from a pull request's commit in the mirror.
	w, err := m.Create(t.Context(), Source{RepoDir: dir, SHA: prSHA}, "run-m", "job", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Remove(t.Context())
	if b, _ := os.ReadFile(filepath.Join(w.Path(), "a.txt")); string(b) != "from a fork\n" {
		t.Errorf("workspace a.txt = %q", b)
	}
	if u := testGit(t, w.Path(), "config", "remote.origin.url"); u != url {
		t.Errorf("workspace origin = %q, want the mirror's remote %q", u, url)
	}
	assertNoToken(t, m.Root())
}

func TestTokenNeverLeaks(t *testing.T) {
	// Not parallel: PATH points at a git wrapper that records every argv.
	var mu sync.Mutex
	var gotAuth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		// A server echoing the credential: git prints it, the error must not.
		http.Error(w, "no such repository; you sent "+r.Header.Get("Authorization")+" token="+testToken, http.StatusNotFound)
	}))
	defer srv.Close()
	bin := t.TempDir()
	argvLog := filepath.Join(t.TempDir(), "argv.log")
	realGit, err := execLookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " + argvLog + "\nexec " + realGit + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "git"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))

	m := newManager(t)
	src, head := newRepo(t, map[string]string{"a": "a\n"})
	url := srv.URL + "/owner/repo.git"
	_, mirrorErr := m.Mirror(t.Context(), url, Auth{Token: testToken})
	pushErr := PushBranch(t.Context(), src, url, "agents/x", head, Auth{Token: testToken})
	for name, err := range map[string]error{"mirror": mirrorErr, "push": pushErr} {
		if err == nil {
			t.Fatalf("%s to a server that answers 404 succeeded", name)
		}
		t.Logf("%s: %v", name, err)
		basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + testToken))
		if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), basic) || !strings.Contains(err.Error(), "you sent Basic ***") {
			t.Errorf("%s error shows the token: %v", name, err)
		}
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+testToken))
	mu.Lock()
	if len(gotAuth) == 0 || gotAuth[0] != want {
		t.Errorf("server saw Authorization %q, want %q", gotAuth, want)
	}
	mu.Unlock()
	argv, _ := os.ReadFile(argvLog)
	if len(argv) == 0 {
		t.Fatalf("the git wrapper recorded nothing")
	}
	if strings.Contains(string(argv), testToken) || strings.Contains(string(argv), want[len("Basic "):]) {
		t.Errorf("token in git's argv:\n%s", argv)
	}
	assertNoToken(t, m.Root())
	assertNoToken(t, src)
	if left := dirEntries(t, filepath.Join(m.Root(), tmpDir)); len(left) != 0 {
		t.Errorf("failed mirror left %v", left)
	}
}

func TestRemoteURLWithCredentialsIsRefused(t *testing.T) {
	t.Parallel()
	m := newManager(t)
	src, head := newRepo(t, map[string]string{"a": "a\n"})
	url := "https://x-access-token:" + testToken + "@github.com/o/r.git"
	_, err := m.Mirror(t.Context(), url, Auth{})
	if err == nil || strings.Contains(err.Error(), testToken) || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("Mirror: err = %v", err)
	}
	err = PushBranch(t.Context(), src, url, "b", head, Auth{})
	if err == nil || strings.Contains(err.Error(), testToken) || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("PushBranch: err = %v", err)
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()
	g := newGitRunner(t.TempDir()).withAuth("https://github.com/o/r.git", Auth{Token: testToken})
	basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + testToken))
	tests := []struct{ in, want string }{
		{"fatal: token " + testToken + " rejected", "fatal: token *** rejected"},
		{"header Authorization: Basic " + basic, "header Authorization: Basic ***"},
		{"fatal: unable to access 'https://user:pw@github.com/o/r.git/'", "fatal: unable to access 'https://***@github.com/o/r.git/'"},
		{"nothing secret", "nothing secret"},
	}
	for _, tc := range tests {
		if got := g.scrub(tc.in); got != tc.want {
			t.Errorf("scrub(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if !strings.HasPrefix(g.config[len(g.config)-1][0], "http.https://github.com/.") {
		t.Errorf("auth header is not scoped to the remote's origin: %q", g.config[len(g.config)-1][0])
	}
}

func TestPushBranch(t *testing.T) {
	t.Parallel()
	src, head := newRepo(t, map[string]string{"a.txt": "a\n"})
	remote := filepath.Join(t.TempDir(), "remote.git")
	testGit(t, t.TempDir(), "init", "-q", "--bare", remote)
	m := newManager(t)
	first, err := CommitPatch(t.Context(), src, head, mustRead(t, agentPatch(t, m, src, head, "one", map[string]string{"a.txt": "one\n"})), "one")
	if err != nil {
		t.Fatal(err)
	}
	second, err := CommitPatch(t.Context(), src, head, mustRead(t, agentPatch(t, m, src, head, "two", map[string]string{"b.txt": "two\n"})), "two")
	if err != nil {
		t.Fatal(err)
	}
	const branch = "agents/audit/nightly"
	for _, sha := range []string{first, second} { // the second is not a descendant: force
		if err := PushBranch(t.Context(), src, "file://"+remote, branch, sha, Auth{Token: testToken}); err != nil {
			t.Fatal(err)
		}
		if got := testGit(t, remote, "rev-parse", "refs/heads/"+branch); got != sha {
			t.Errorf("remote branch = %s, want %s", got, sha)
		}
	}
	if diff := cmp.Diff("a.txt\nb.txt", testGit(t, remote, "ls-tree", "--name-only", "refs/heads/"+branch)); diff != "" {
		t.Errorf("pushed tree (-want +got):\n%s", diff)
	}
	assertNoToken(t, remote)
	assertNoToken(t, src)
	for _, bad := range []string{"", "-f", "a..b", "with space", "x.lock"} {
		if err := PushBranch(t.Context(), src, "file://"+remote, bad, second, Auth{}); err == nil || !strings.Contains(err.Error(), "not valid") {
			t.Errorf("branch %q: err = %v, want not valid", bad, err)
		}
	}
}

func TestReadDir(t *testing.T) {
	t.Parallel()
	src, head := newRepo(t, map[string]string{
		".agents/review.yaml":   "name: review\n",
		".agents/nested/a.yml":  "name: a\n",
		".agentsx/not-this.txt": "x\n",
		"src/main.go":           "package main\n",
	})
	if err := os.Symlink("/etc/passwd", filepath.Join(src, ".agents", "link.yaml")); err != nil {
		t.Fatal(err)
	}
	testGit(t, src, "add", "-A")
	testGit(t, src, "commit", "-qm", "link")
	withLink := testGit(t, src, "rev-parse", "HEAD")
	writeFiles(t, src, map[string]string{".agents/big.yaml": strings.Repeat("x", maxReadDirFile+1)})
	testGit(t, src, "add", "-A")
	testGit(t, src, "commit", "-qm", "big")
	big := testGit(t, src, "rev-parse", "HEAD")

	fsys, err := ReadDir(t.Context(), src, head, ".agents")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := fs.ReadFile(fsys, p)
			got[p] = string(b)
		}
		return err
	})
	if diff := cmp.Diff(map[string]string{".agents/review.yaml": "name: review\n", ".agents/nested/a.yml": "name: a\n"}, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if fsys, err := ReadDir(t.Context(), src, withLink, "./.agents/"); err != nil {
		t.Error(err)
	} else if _, err := fs.Stat(fsys, ".agents/link.yaml"); err == nil {
		t.Errorf("a symbolic link was read")
	}
	if fsys, err := ReadDir(t.Context(), src, head, "missing"); err != nil {
		t.Error(err)
	} else if _, err := fs.ReadDir(fsys, "missing"); err == nil {
		t.Errorf("a missing directory exists")
	}
	for _, tc := range []struct{ sha, dir, want string }{
		{"HEAD", ".agents", "not a hex commit id"},
		{"deadbeef", ".agents", "not found"},
		{head, "../etc", "relative"},
		{head, "/etc", "relative"},
		{big, ".agents", "limited to"},
	} {
		if _, err := ReadDir(t.Context(), src, tc.sha, tc.dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadDir(%s, %s): err = %v, want %q", tc.sha, tc.dir, err, tc.want)
		}
	}
}
