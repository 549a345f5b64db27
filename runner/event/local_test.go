package event

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// gitRepo is a real repository in a temp dir, driven by the git binary.
type gitRepo struct {
	t   *testing.T
	dir string
}

func newGitRepo(t *testing.T, dir string, args ...string) *gitRepo {
	t.Helper()
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "widgets")
	}
	r := &gitRepo{t: t, dir: dir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.git(append([]string{"init", "-q", "-b", "main"}, args...)...)
	r.git("config", "user.name", "Mona")
	r.git("config", "user.email", "mona@example.com")
	r.git("config", "commit.gpgsign", "false")
	return r
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-C", r.dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes the files (path → content; "" deletes) and commits them.
func (r *gitRepo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	for p, content := range files {
		full := filepath.Join(r.dir, p)
		if content == "" {
			r.git("rm", "-q", p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
		r.git("add", p)
	}
	r.git("commit", "-q", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

func TestFromLocalRepoOnTheDefaultBranchComparesWithTheParent(t *testing.T) {
	t.Parallel()
	r := newGitRepo(t, "")
	first := r.commit("first", map[string]string{"README.md": "hi", "src/a.go": "package a"})
	head := r.commit("second", map[string]string{"src/a.go": "package a // x", "docs/b with space.md": "b"})
	r.git("remote", "add", "origin", "git@github.com:acme/widgets.git")

	ev, err := FromLocalRepo(t.Context(), filepath.Join(r.dir, "src"), "")
	if err != nil {
		t.Fatal(err)
	}
	want := &Event{
		Kind: KindPush, Repo: Repo{Owner: "acme", Name: "widgets", CloneURL: "git@github.com:acme/widgets.git", DefaultBranch: "main"},
		Ref: "refs/heads/main", Branch: "main", SHA: head, Before: first,
		ChangedFiles: []string{"docs/b with space.md", "src/a.go"}, Sender: "Mona",
	}
	if diff := cmp.Diff(want, ev, cmpIgnorePayload); diff != "" {
		t.Errorf("FromLocalRepo (-want +got):\n%s", diff)
	}
	if ev.Payload["after"] != head || ev.Payload["ref"] != "refs/heads/main" {
		t.Errorf("payload after/ref = %v/%v", ev.Payload["after"], ev.Payload["ref"])
	}
}

func TestFromLocalRepoOnAFeatureBranchComparesWithTheMergeBase(t *testing.T) {
	t.Parallel()
	r := newGitRepo(t, "")
	r.commit("base", map[string]string{"README.md": "hi", "old.txt": "x"})
	r.git("checkout", "-q", "-b", "feature/login")
	r.commit("feature one", map[string]string{"src/login.go": "package src"})
	head := r.commit("Add login form", map[string]string{"old.txt": "", "web/form.html": "<form>"})
	r.git("checkout", "-q", "main")
	mainTip := r.commit("main moves on", map[string]string{"CHANGELOG.md": "unrelated"})
	r.git("checkout", "-q", "feature/login")

	push, err := FromLocalRepo(t.Context(), r.dir, KindPush)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"old.txt", "src/login.go", "web/form.html"}
	if push.Branch != "feature/login" || push.SHA != head || push.Repo.FullName() != "local/widgets" {
		t.Errorf("push = branch %q sha %q repo %q", push.Branch, push.SHA, push.Repo.FullName())
	}
	if diff := cmp.Diff(files, push.ChangedFiles); diff != "" {
		t.Errorf("push ChangedFiles (-want +got):\n%s", diff)
	}

	pr, err := FromLocalRepo(t.Context(), r.dir, KindPullRequest)
	if err != nil {
		t.Fatal(err)
	}
	wantPR := &PullRequest{Title: "Add login form", Author: "Mona",
		HeadRef: "feature/login", HeadSHA: head, HeadRepo: "local/widgets", BaseRef: "main", BaseSHA: mainTip}
	if diff := cmp.Diff(wantPR, pr.PullRequest); diff != "" {
		t.Errorf("PullRequest (-want +got):\n%s", diff)
	}
	if pr.Kind != KindPullRequest || pr.Action != "opened" || pr.Branch != "main" || pr.SHA != head {
		t.Errorf("pr event = %s/%s branch %q sha %q", pr.Kind, pr.Action, pr.Branch, pr.SHA)
	}
	if diff := cmp.Diff(files, pr.ChangedFiles); diff != "" {
		t.Errorf("pr ChangedFiles (-want +got):\n%s", diff)
	}
	p := pr.Payload["pull_request"].(map[string]any)
	if p["head"].(map[string]any)["ref"] != "feature/login" || p["base"].(map[string]any)["sha"] != mainTip {
		t.Errorf("payload pull_request = %v", p)
	}
}

func TestFromLocalRepoFindsTheDefaultBranch(t *testing.T) {
	t.Parallel()
	t.Run("origin HEAD wins", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		upstream := newGitRepo(t, filepath.Join(root, "acme", "tools"))
		upstream.git("checkout", "-q", "-b", "trunk")
		upstream.commit("one", map[string]string{"a": "1"})
		(&gitRepo{t: t, dir: root}).git("clone", "-q", upstream.dir, filepath.Join(root, "clone"))
		clone := &gitRepo{t: t, dir: filepath.Join(root, "clone")}
		clone.git("config", "user.name", "Mona")
		clone.git("config", "user.email", "mona@example.com")
		clone.git("checkout", "-q", "-b", "topic")
		clone.commit("two", map[string]string{"b": "2"})
		ev, err := FromLocalRepo(t.Context(), clone.dir, KindPush)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Repo.DefaultBranch != "trunk" || ev.Repo.FullName() != "acme/tools" {
			t.Errorf("repo = %+v, want acme/tools with default branch trunk", ev.Repo)
		}
		if diff := cmp.Diff([]string{"b"}, ev.ChangedFiles); diff != "" {
			t.Errorf("ChangedFiles (-want +got):\n%s", diff)
		}
	})
	t.Run("master when there is no main", func(t *testing.T) {
		t.Parallel()
		r := newGitRepo(t, "")
		r.git("checkout", "-q", "-b", "master")
		r.commit("one", map[string]string{"a": "1"})
		r.git("checkout", "-q", "-b", "dev")
		r.commit("two", map[string]string{"b": "2"})
		ev, err := FromLocalRepo(t.Context(), r.dir, KindPullRequest)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Repo.DefaultBranch != "master" || ev.PullRequest.BaseRef != "master" {
			t.Errorf("default branch = %q, base = %q, want master", ev.Repo.DefaultBranch, ev.PullRequest.BaseRef)
		}
		if diff := cmp.Diff([]string{"b"}, ev.ChangedFiles); diff != "" {
			t.Errorf("ChangedFiles (-want +got):\n%s", diff)
		}
	})
}

func TestFromLocalRepoHandlesUnusualStates(t *testing.T) {
	t.Parallel()
	t.Run("a root commit lists its own files", func(t *testing.T) {
		t.Parallel()
		r := newGitRepo(t, "")
		r.commit("root", map[string]string{"a.txt": "1", "d/b.txt": "2"})
		ev, err := FromLocalRepo(t.Context(), r.dir, KindPush)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"a.txt", "d/b.txt"}, ev.ChangedFiles); diff != "" {
			t.Errorf("ChangedFiles (-want +got):\n%s", diff)
		}
	})
	t.Run("a detached HEAD has no branch", func(t *testing.T) {
		t.Parallel()
		r := newGitRepo(t, "")
		first := r.commit("one", map[string]string{"a": "1"})
		r.commit("two", map[string]string{"b": "2"})
		r.git("checkout", "-q", "--detach", first)
		ev, err := FromLocalRepo(t.Context(), r.dir, KindPush)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Branch != "" || ev.Ref != "" || ev.SHA != first {
			t.Errorf("branch %q ref %q sha %q, want a detached %s", ev.Branch, ev.Ref, ev.SHA, first)
		}
		if _, err := FromLocalRepo(t.Context(), r.dir, KindPullRequest); err == nil || !strings.Contains(err.Error(), "detached") {
			t.Errorf("pull_request on a detached HEAD: err = %v, want one about the detached HEAD", err)
		}
	})
	t.Run("schedule and dispatch events carry the repository state", func(t *testing.T) {
		t.Parallel()
		r := newGitRepo(t, "")
		head := r.commit("one", map[string]string{"a": "1"})
		for _, kind := range []string{KindSchedule, KindDispatch} {
			ev, err := FromLocalRepo(t.Context(), r.dir, kind)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Kind != kind || ev.SHA != head || ev.Branch != "main" || ev.Payload["sha"] != head {
				t.Errorf("%s event = kind %q sha %q branch %q", kind, ev.Kind, ev.SHA, ev.Branch)
			}
		}
	})
	t.Run("errors say what is wrong", func(t *testing.T) {
		t.Parallel()
		empty := newGitRepo(t, "")
		for _, tt := range []struct {
			name, dir, kind, want string
		}{
			{"not a repository", t.TempDir(), "", "read git repository"},
			{"no commit yet", empty.dir, "", "has no commit yet"},
			{"an unknown kind", empty.dir, "issue_comment", `local event kind "issue_comment"`},
		} {
			if _, err := FromLocalRepo(t.Context(), tt.dir, tt.kind); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
			}
		}
	})
}

func TestOwnerNameReadsEveryRemoteForm(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		remote, owner, name string
		ok                  bool
	}{
		{"https://github.com/acme/widgets.git", "acme", "widgets", true},
		{"https://github.com/acme/widgets", "acme", "widgets", true},
		{"https://ghe.example.com/org/team/repo.git/", "team", "repo", true},
		{"git@github.com:acme/widgets.git", "acme", "widgets", true},
		{"ssh://git@github.com:22/acme/widgets.git", "acme", "widgets", true},
		{"/srv/git/acme/widgets.git", "acme", "widgets", true},
		{"file:///srv/git/acme/widgets", "acme", "widgets", true},
		{"widgets", "", "", false},
	} {
		owner, name, ok := ownerName(tt.remote)
		if owner != tt.owner || name != tt.name || ok != tt.ok {
			t.Errorf("ownerName(%q) = %q, %q, %v; want %q, %q, %v", tt.remote, owner, name, ok, tt.owner, tt.name, tt.ok)
		}
	}
}
