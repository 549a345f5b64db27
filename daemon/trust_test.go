package daemon

import (
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	gh "github.com/google/go-github/v62/github"

	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/internal/fixture"
	"github.com/agentrunner/agentrunner/internal/githubfake"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
	"github.com/agentrunner/agentrunner/workspace"
)

// These tests send real GitHub payloads through the daemon (store, intake, run job) to a
// GitPipeline on a local bare repository and a fake GitHub, and check which config and which
// secrets the agents got.

const (
	trustOwner = "Codertocat"
	trustName  = "Hello-World"
	trustToken = "ghs_daemon_trust_test"
	trustKey   = "s3cr3t-daemon-value"
)

// trustRoutine is a review routine whose agent's argv names where its config came from.
func trustRoutine(from string) string {
	return `name: review
on:
  pull_request: {types: [opened]}
  push: {branches: [master]}
  issue_comment: {}
secrets: [API_KEY]
agents:
  fix:
    image: agentrunner/testagent:dev
    command: ["/testagent", "print", "config-from-` + from + `"]
    prompt: "Review: ${{ event.pull_request.title }}"
    secrets: [API_KEY]
`
}

// trustRemote is a bare repository standing in for GitHub: master holds the base config,
// branch `changes` one commit on top with the head config.
type trustRemote struct {
	dir, url, base, head string
}

func newTrustRemote(t *testing.T) *trustRemote {
	t.Helper()
	r := &trustRemote{dir: filepath.Join(t.TempDir(), trustName+".git")}
	r.url = "file://" + r.dir
	r.base, r.head = gittest.PullRequestRemote(t, r.dir,
		map[string]string{".agents/review.yaml": trustRoutine("base")},
		map[string]string{".agents/review.yaml": trustRoutine("head")})
	return r
}

// forkOnly leaves the head commit only where GitHub keeps a fork's head: refs/pull/2/head.
func (r *trustRemote) forkOnly(t *testing.T) {
	gittest.Git(t, r.dir, "update-ref", "refs/pull/2/head", r.head)
	gittest.Git(t, r.dir, "update-ref", "-d", "refs/heads/changes")
}

// taskRecorder plays every agent successfully and keeps its task.
type taskRecorder struct {
	mu    sync.Mutex
	tasks []*runner.Task
}

func (s *taskRecorder) Run(_ context.Context, t *runner.Task, _ io.Writer) (*runner.Exit, error) {
	s.mu.Lock()
	s.tasks = append(s.tasks, t)
	s.mu.Unlock()
	now := time.Now()
	return &runner.Exit{Outcome: result.Success, Started: now, Finished: now}, nil
}

func (s *taskRecorder) all() []*runner.Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tasks)
}

type trustDaemon struct {
	d   *Daemon
	st  store.Store
	rec *taskRecorder
}

// startTrustDaemon runs a daemon whose GitPipeline serves r, with GitHub f (nil: none).
func startTrustDaemon(t *testing.T, r *trustRemote, f *githubfake.Fake) *trustDaemon {
	t.Helper()
	repos, err := NewRepos([]Repo{{Name: trustOwner + "/" + trustName, URL: r.url, DefaultBranch: "master"}})
	if err != nil {
		t.Fatal(err)
	}
	repos.Env = map[string]string{"API_KEY": trustKey}
	wsm, err := workspace.NewManager(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wsm.Close() })
	rec := &taskRecorder{}
	pipe := &GitPipeline{Workspaces: wsm, Sandbox: rec, Repos: repos, RunsDir: t.TempDir()}
	if f != nil {
		f.AddToken(trustToken)
		c, err := github.NewClient(t.Context(), github.Config{BaseURL: f.URL(), Token: trustToken, Clock: githubfake.NewClock(time.Now())})
		if err != nil {
			t.Fatal(err)
		}
		pipe.GitHub = c
	}
	st := storetest.SQLite(t).Open(t)
	d, _, _ := startDaemon(t, st, pipe, "trust", func(o *Options) { o.Repos = repos })
	return &trustDaemon{d: d, st: st, rec: rec}
}

// deliver records a GitHub delivery and waits until it is planned and its runs completed.
func (td *trustDaemon) deliver(t *testing.T, kind, id string, payload map[string]any) []store.Run {
	t.Helper()
	body, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := td.d.RecordDelivery(t.Context(), store.Delivery{ID: id, Event: kind, Body: body}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		del, err := td.st.GetDelivery(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		runs, err := td.st.ListRuns(t.Context(), store.RunFilter{DeliveryID: id})
		if err != nil {
			t.Fatal(err)
		}
		done := del.Status != store.DeliveryPending
		for _, r := range runs {
			done = done && r.Status == store.RunCompleted
		}
		if done {
			if del.Status != store.DeliveryDone {
				t.Fatalf("delivery %s: %s: %s", id, del.Status, del.Error)
			}
			return runs
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivery %s: not planned and run after 30s (status %s, %d runs)", id, del.Status, len(runs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readWebhook(t *testing.T, name string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(fixture.Webhook(t, name), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func jsonObj(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m = m[p].(map[string]any)
	}
	return m
}

// pointRepo makes a payload's repository the test's.
func pointRepo(m map[string]any, r *trustRemote) {
	repo := jsonObj(m, "repository")
	repo["clone_url"], repo["full_name"], repo["name"], repo["default_branch"] = r.url, trustOwner+"/"+trustName, trustName, "master"
	jsonObj(repo, "owner")["login"] = trustOwner
}

// wantOneTask checks the only agent that ran: its config's origin and whether it got the secret.
func wantOneTask(t *testing.T, td *trustDaemon, runs []store.Run, sha, from string, secret bool) {
	t.Helper()
	tasks := td.rec.all()
	if len(runs) != 1 || len(tasks) != 1 {
		t.Fatalf("%d runs, %d agents: want one", len(runs), len(tasks))
	}
	if runs[0].SHA != sha || runs[0].Conclusion != string(result.ConclusionSuccess) {
		t.Errorf("run at %s concluded %q, want %s and success", runs[0].SHA, runs[0].Conclusion, sha)
	}
	if !slices.Contains(tasks[0].Instance.Argv, "config-from-"+from) {
		t.Errorf("argv = %q, want the %s config", tasks[0].Instance.Argv, from)
	}
	if got := tasks[0].Secrets["API_KEY"] == trustKey; got != secret {
		t.Errorf("secrets = %v, want API_KEY: %v", tasks[0].Secrets, secret)
	}
}

func TestDaemonCheckRunReRequestTrust(t *testing.T) {
	tests := []struct {
		name       string
		forkOnly   bool
		withGitHub bool
		from       string
		secret     bool
	}{
		{"of a commit a branch holds runs its own config with secrets", false, true, "head", true},
		{"of a commit no branch holds runs the base config without secrets", true, true, "base", false},
		{"of a commit no branch holds, without GitHub, runs the mirror's base config without secrets", true, false, "base", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTrustRemote(t)
			if tc.forkOnly {
				r.forkOnly(t)
			}
			var f *githubfake.Fake
			if tc.withGitHub {
				f = githubfake.New(t)
				f.SetRef(trustOwner, trustName, "heads/master", r.base)
			}
			td := startTrustDaemon(t, r, f)
			m := readWebhook(t, "check_run.rerequested.json")
			pointRepo(m, r)
			cr := jsonObj(m, "check_run")
			cr["name"], cr["head_sha"] = "agents/review", r.head
			runs := td.deliver(t, "check_run", "d-rerun", m)
			wantOneTask(t, td, runs, r.head, tc.from, tc.secret)
		})
	}
}

func TestDaemonPullRequestTrust(t *testing.T) {
	tests := []struct {
		name, headRepo string
		from           string
		secret         bool
	}{
		{"from the same repository runs its head's config with secrets", "", "head", true},
		{"from a fork runs the base config without secrets", "evil/Hello-World", "base", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTrustRemote(t)
			td := startTrustDaemon(t, r, githubfake.New(t))
			m := readWebhook(t, "pull_request.opened.json")
			pointRepo(m, r)
			pr := jsonObj(m, "pull_request")
			jsonObj(pr, "head")["sha"] = r.head
			jsonObj(pr, "base")["sha"] = r.base
			if tc.headRepo != "" {
				jsonObj(pr, "head", "repo")["full_name"] = tc.headRepo
			}
			runs := td.deliver(t, "pull_request", "d-pr", m)
			wantOneTask(t, td, runs, r.head, tc.from, tc.secret)
		})
	}
}

func TestDaemonCommentCommandNeedsWriteAccess(t *testing.T) {
	tests := []struct {
		name, user, role string
		withGitHub       bool
		runs             bool
	}{
		{"a writer starts the routine at the pull request's head", "writer", "write", true, true},
		{"a maintainer starts the routine", "maintainer", "maintain", true, true},
		{"a triager starts nothing", "triager", "triage", true, false},
		{"a stranger starts nothing", "stranger", "", true, false},
		{"without GitHub nobody's access can be checked: nothing starts", "writer", "write", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTrustRemote(t)
			var f *githubfake.Fake
			if tc.withGitHub {
				f = githubfake.New(t)
				if tc.role != "" {
					f.SetPermission(trustOwner, trustName, tc.user, tc.role)
				}
				f.SetRef(trustOwner, trustName, "heads/changes", r.head)
				f.SetRef(trustOwner, trustName, "heads/master", r.base)
			}
			td := startTrustDaemon(t, r, f)
			if f != nil {
				if _, _, err := td.d.o.Pipeline.(*GitPipeline).GitHub.Installation(0).REST().PullRequests.Create(t.Context(), trustOwner, trustName,
					&gh.NewPullRequest{Title: gh.String("A PR"), Head: gh.String("changes"), Base: gh.String("master")}); err != nil {
					t.Fatal(err)
				}
			}
			m := readWebhook(t, "issue_comment.created.json")
			pointRepo(m, r)
			c := jsonObj(m, "comment")
			c["body"] = "/agents run review"
			jsonObj(c, "user")["login"] = tc.user
			is := jsonObj(m, "issue")
			is["number"] = 1
			is["pull_request"] = map[string]any{"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"}
			runs := td.deliver(t, "issue_comment", "d-comment", m)
			if !tc.runs {
				if len(runs) != 0 || len(td.rec.all()) != 0 {
					t.Fatalf("%d runs, %d agents: want none", len(runs), len(td.rec.all()))
				}
				if f != nil && len(f.RequestsTo("pulls/get")) != 0 {
					t.Errorf("a user without write access caused %d pull request reads", len(f.RequestsTo("pulls/get")))
				}
				return
			}
			wantOneTask(t, td, runs, r.head, "head", true)
			if p := td.rec.all()[0].Instance.Prompt; p != "Review: A PR" {
				t.Errorf("prompt = %q, want the pull request's title read from GitHub", p)
			}
		})
	}
}
