package pipeline_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gh "github.com/google/go-github/v62/github"

	"github.com/agentrunner/agentrunner/internal/githubfake"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/runner/result"
)

// routine is a review routine whose agent's argv names where its config came from.
func routine(from string, forkSecrets bool) string {
	fs := ""
	if forkSecrets {
		fs = ", fork-secrets: true"
	}
	return `name: review
on:
  pull_request: {types: [opened]` + fs + `}
  push: {branches: [master]}
  issue_comment: {}
secrets: [API_KEY]
agents:
  fix:
    image: agentrunner/testagent:dev
    command: ["/testagent", "print", "config-from-` + from + `"]
    prompt: "Review: ${{ event.pull_request.title }}"
    secrets: [API_KEY]
    changes: keep
publish:
  check: true
  pull-request: {title: "Review fixes", draft: true}
  comment: true
`
}

func twoConfigs(t *testing.T, forkSecrets bool) *remote {
	return newRemote(t,
		map[string]string{".agents/review.yaml": routine("base", forkSecrets), "README.md": "hello\n"},
		map[string]string{".agents/review.yaml": routine("head", forkSecrets), "README.md": "hello, head\n"})
}

func TestSameRepoPullRequestRunsHeadConfigWithSecrets(t *testing.T) {
	r := twoConfigs(t, false)
	f := githubfake.New(t)
	sb := &fakeSandbox{}
	p := newPipeline(t, f, sb)
	title := "$(touch /tmp/pwned-agentrunner); rm -rf / `id` ${HOME}"
	runs, err := p.HandleDelivery(t.Context(), "pull_request", "d-1", marshal(t, prPayload(t, r, title, "")))
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Conclusion != result.ConclusionSuccess {
		t.Fatalf("runs = %+v", runs)
	}
	tasks := sb.all()
	if len(tasks) != 1 {
		t.Fatalf("tasks = %d", len(tasks))
	}
	task := tasks[0]
	if !slices.Contains(task.Instance.Argv, "config-from-head") {
		t.Errorf("argv = %q, want the head's config (same-repository pull request)", task.Instance.Argv)
	}
	if task.Secrets["API_KEY"] != "s3cr3t-value" {
		t.Errorf("secrets = %v, want API_KEY", task.Secrets)
	}
	// Event text reaches the prompt verbatim, as data, and never the argv.
	if task.Instance.Prompt != "Review: "+title {
		t.Errorf("prompt = %q", task.Instance.Prompt)
	}
	for _, a := range task.Instance.Argv {
		if strings.Contains(a, "pwned") {
			t.Errorf("event text in argv: %q", task.Instance.Argv)
		}
	}
	if _, err := os.Stat("/tmp/pwned-agentrunner"); err == nil {
		t.Error("the title was executed")
	}
	// Reported: check run, PR into the PR's head branch, one comment.
	crs := f.CheckRuns()
	if len(crs) != 1 || crs[0].Conclusion != "success" || crs[0].HeadSHA != r.head || len(crs[0].Annotations) != 1 ||
		!strings.HasPrefix(crs[0].DetailsURL, "https://runner.example/runs/") {
		t.Errorf("check runs = %+v", crs)
	}
	prs := f.PullRequests()
	if len(prs) != 1 || prs[0].Base != "changes" || prs[0].Head != "agents/review/pr-2" || !prs[0].Draft {
		t.Errorf("pull requests = %+v", prs)
	}
	if got := gittest.Git(t, r.dir, "show", "agents/review/pr-2:fix.txt"); got != "fixed by fix" {
		t.Errorf("fix.txt on the pushed branch = %q", got)
	}
	if cs := f.Comments(); len(cs) != 1 || cs[0].Issue != 2 || !strings.Contains(cs[0].Body, "agents/review/pr-2") && !strings.Contains(cs[0].Body, "pull/") {
		t.Errorf("comments = %+v", cs)
	}

	// The same delivery again (a retried intake) updates everything in place.
	if _, err := p.HandleDelivery(t.Context(), "pull_request", "d-1", marshal(t, prPayload(t, r, title, ""))); err != nil {
		t.Fatal(err)
	}
	if len(f.CheckRuns()) != 1 || len(f.PullRequests()) != 1 || len(f.Comments()) != 1 {
		t.Errorf("a retried delivery duplicated: %d check runs, %d PRs, %d comments", len(f.CheckRuns()), len(f.PullRequests()), len(f.Comments()))
	}
}

func TestForkPullRequest(t *testing.T) {
	tests := []struct {
		name        string
		forkSecrets bool
		wantSecret  bool
	}{
		{"gets the base branch's config and no secrets", false, false},
		{"gets secrets when the routine opts in", true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := twoConfigs(t, tc.forkSecrets)
			f := githubfake.New(t)
			sb := &fakeSandbox{}
			p := newPipeline(t, f, sb)
			runs, err := p.HandleDelivery(t.Context(), "pull_request", "d-fork", marshal(t, prPayload(t, r, "from a fork", "evil/Hello-World")))
			if err != nil {
				t.Fatal(err)
			}
			tasks := sb.all()
			if len(runs) != 1 || len(tasks) != 1 {
				t.Fatalf("runs %d tasks %d", len(runs), len(tasks))
			}
			if !slices.Contains(tasks[0].Instance.Argv, "config-from-base") {
				t.Errorf("argv = %q, want the base branch's config", tasks[0].Instance.Argv)
			}
			if got := tasks[0].Secrets["API_KEY"] != ""; got != tc.wantSecret {
				t.Errorf("secrets = %v, want secret %v", tasks[0].Secrets, tc.wantSecret)
			}
			// It still runs on the fork's code, and no pull request goes into the fork.
			if runs[0].SHA != r.head || len(f.PullRequests()) != 0 {
				t.Errorf("run at %s, %d PRs", runs[0].SHA, len(f.PullRequests()))
			}
			if crs := f.CheckRuns(); len(crs) != 1 || !strings.Contains(crs[0].Summary, "fork") {
				t.Errorf("check run summary does not explain the missing PR: %+v", crs)
			}
		})
	}
}

func commentPayload(t *testing.T, r *remote, user, body string) []byte {
	m := readPayload(t, "issue_comment.created.json")
	obj(m, "repository")["clone_url"] = r.url
	c := obj(m, "comment")
	c["body"] = body
	obj(c, "user")["login"] = user
	is := obj(m, "issue")
	is["number"] = 1
	is["pull_request"] = map[string]any{"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"}
	return marshal(t, m)
}

func TestCommentCommandNeedsWriteAccess(t *testing.T) {
	tests := []struct {
		user, role string
		runs       int
	}{
		{"maintainer", "maintain", 1},
		{"writer", "write", 1},
		{"triager", "triage", 0},
		{"stranger", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.user, func(t *testing.T) {
			r := twoConfigs(t, false)
			f := githubfake.New(t)
			if tc.role != "" {
				f.SetPermission(owner, repoName, tc.user, tc.role)
			}
			sb := &fakeSandbox{}
			p := newPipeline(t, f, sb)
			f.SetRef(owner, repoName, "heads/changes", r.head)
			f.SetRef(owner, repoName, "heads/master", r.base)
			if _, _, err := newGitHub(t, f).Installation(0).REST().PullRequests.Create(t.Context(), owner, repoName,
				&gh.NewPullRequest{Title: gh.String("A PR"), Head: gh.String("changes"), Base: gh.String("master")}); err != nil {
				t.Fatal(err)
			}
			runs, err := p.HandleDelivery(t.Context(), "issue_comment", "d-c", commentPayload(t, r, tc.user, "/agents run review"))
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) != tc.runs {
				t.Fatalf("runs = %d, want %d", len(runs), tc.runs)
			}
			if tc.runs == 0 {
				if n := len(f.RequestsTo("pulls/get")); n != 0 || len(sb.all()) != 0 {
					t.Errorf("a user without write access caused %d PR reads and %d agents", n, len(sb.all()))
				}
				return
			}
			if runs[0].SHA != r.head || !slices.Contains(sb.all()[0].Instance.Argv, "config-from-head") {
				t.Errorf("ran at %s (want the PR head %s) with argv %q", runs[0].SHA, r.head, sb.all()[0].Instance.Argv)
			}
			if sb.all()[0].Instance.Prompt != "Review: A PR" {
				t.Errorf("prompt = %q, want the PR's title from GET pulls/{n}", sb.all()[0].Instance.Prompt)
			}
		})
	}
}

func TestCheckReRequests(t *testing.T) {
	r := twoConfigs(t, false)
	tests := []struct {
		name, kind string
		edit       func(m map[string]any)
		runs       int
		wantSHA    string
	}{
		{"check_run rerequested re-runs the routine it names", "check_run", func(m map[string]any) {
			cr := obj(m, "check_run")
			cr["name"], cr["head_sha"] = "agents/review", r.base
		}, 1, r.base},
		{"check_run rerequested of someone else's check does nothing", "check_run", func(m map[string]any) {
			obj(m, "check_run")["head_sha"] = r.base
		}, 0, ""},
		{"check_suite rerequested re-runs the push routines of its commit", "check_suite", func(m map[string]any) {
			cs := obj(m, "check_suite")
			cs["head_sha"], cs["head_branch"] = r.base, "master"
		}, 1, r.base},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := githubfake.New(t)
			sb := &fakeSandbox{}
			p := newPipeline(t, f, sb)
			m := readPayload(t, tc.kind+".rerequested.json")
			repo := obj(m, "repository")
			repo["clone_url"], repo["full_name"], repo["name"] = r.url, owner+"/"+repoName, repoName
			obj(repo, "owner")["login"] = owner
			tc.edit(m)
			runs, err := p.HandleDelivery(t.Context(), tc.kind, "d-"+tc.kind, marshal(t, m))
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) != tc.runs {
				t.Fatalf("runs = %d, want %d", len(runs), tc.runs)
			}
			if tc.runs > 0 && (runs[0].SHA != tc.wantSHA || runs[0].Routine != "review") {
				t.Errorf("run = %s at %s", runs[0].Routine, runs[0].SHA)
			}
		})
	}
}

func TestCheckReRequestOfAForkCommitIsUntrusted(t *testing.T) {
	r := twoConfigs(t, false)
	// The fork's head exists only as refs/pull/2/head, as GitHub keeps it, on no branch.
	gittest.Git(t, r.dir, "update-ref", "refs/pull/2/head", r.head)
	gittest.Git(t, r.dir, "update-ref", "-d", "refs/heads/changes")
	f := githubfake.New(t)
	f.SetRef(owner, repoName, "heads/master", r.base)
	sb := &fakeSandbox{}
	p := newPipeline(t, f, sb)
	m := readPayload(t, "check_run.rerequested.json")
	repo := obj(m, "repository")
	repo["clone_url"], repo["full_name"], repo["name"], repo["default_branch"] = r.url, owner+"/"+repoName, repoName, "master"
	obj(repo, "owner")["login"] = owner
	cr := obj(m, "check_run")
	cr["name"], cr["head_sha"] = "agents/review", r.head
	runs, err := p.HandleDelivery(t.Context(), "check_run", "d-x", marshal(t, m))
	if err != nil {
		t.Fatal(err)
	}
	tasks := sb.all()
	if len(runs) != 1 || len(tasks) != 1 {
		t.Fatalf("runs %d tasks %d", len(runs), len(tasks))
	}
	if !slices.Contains(tasks[0].Instance.Argv, "config-from-base") || len(tasks[0].Secrets) != 0 {
		t.Errorf("argv %q secrets %v: want the default branch's config and no secrets", tasks[0].Instance.Argv, tasks[0].Secrets)
	}
}

func TestEventsThatStartNothing(t *testing.T) {
	r := twoConfigs(t, false)
	noAgents := newRemote(t, map[string]string{"README.md": "x\n"}, nil)
	tests := []struct {
		name, kind string
		body       func(t *testing.T) []byte
	}{
		{"ping", "ping", func(t *testing.T) []byte { return marshal(t, readPayload(t, "ping.json")) }},
		{"installation", "installation", func(t *testing.T) []byte { return marshal(t, readPayload(t, "installation.created.json")) }},
		{"a comment that is not a command", "issue_comment", func(t *testing.T) []byte { return commentPayload(t, r, "x", "looks good") }},
		{"a pull request action the routine does not list", "pull_request", func(t *testing.T) []byte {
			m := prPayload(t, r, "t", "")
			m["action"] = "labeled"
			return marshal(t, m)
		}},
		{"a repository without .agents", "pull_request", func(t *testing.T) []byte { return marshal(t, prPayload(t, noAgents, "t", "")) }},
		{"an event kind we do not handle", "workflow_run", func(t *testing.T) []byte { return []byte(`{}`) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := githubfake.New(t)
			sb := &fakeSandbox{}
			runs, err := newPipeline(t, f, sb).HandleDelivery(t.Context(), tc.kind, "d", tc.body(t))
			if err != nil || len(runs) != 0 || len(sb.all()) != 0 || len(f.CheckRuns()) != 0 {
				t.Errorf("err %v, runs %d, agents %d, check runs %d: want nothing", err, len(runs), len(sb.all()), len(f.CheckRuns()))
			}
		})
	}
}

func TestInvalidConfigIsAnError(t *testing.T) {
	r := newRemote(t, map[string]string{".agents/bad.yaml": "name: bad\nagents: 5\n"}, nil)
	f := githubfake.New(t)
	_, err := newPipeline(t, f, &fakeSandbox{}).HandleDelivery(t.Context(), "pull_request", "d", marshal(t, prPayload(t, r, "t", "")))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(".agents", "bad.yaml")) {
		t.Errorf("err = %v, want one naming .agents/bad.yaml", err)
	}
	_ = fmt.Sprint
}
