package reporters_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gh "github.com/google/go-github/v62/github"

	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/internal/githubfake"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

const sha = "0123456789abcdef0123456789abcdef01234567"

var repo = reporters.GitHubRepo{Owner: "o", Name: "r"}

func client(t *testing.T, f *githubfake.Fake) *gh.Client {
	t.Helper()
	f.AddToken("tok")
	c, err := github.NewClient(t.Context(), github.Config{BaseURL: f.URL(), Token: "tok", Clock: githubfake.NewClock(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	return c.Installation(0).REST()
}

func runInfo(id string, pub plan.Publish, ev *event.Event) *reporters.RunInfo {
	if ev == nil {
		ev = &event.Event{Kind: event.KindPush, Repo: event.Repo{Owner: "o", Name: "r", DefaultBranch: "main"}, Branch: "main", SHA: sha}
	}
	return &reporters.RunInfo{ID: id, Repo: "o/r", Event: ev, DetailsURL: "https://runner.example/runs/" + id,
		Plan: &plan.Run{Routine: "review", SHA: sha, Publish: pub}}
}

func finished(findings int, outcome result.Outcome) *result.Run {
	now := time.Now()
	j := &result.Job{ID: "lint", Agent: "lint", Outcome: outcome, Started: now.Add(-time.Second), Finished: now,
		LogTail: "step 1\nstep 2 with ```backticks```\nERROR: boom\n"}
	if outcome == result.Failed {
		j.ExitCode = 2
	}
	for i := range findings {
		j.Findings = append(j.Findings, result.Finding{Path: fmt.Sprintf("src/f%d.go", i), Line: i + 1, Level: []string{"error", "warning", "info"}[i%3], Message: "m"})
	}
	conc := result.ConclusionSuccess
	if outcome != result.Success {
		conc = result.ConclusionFailure
	}
	return &result.Run{ID: "run-1", Routine: "review", SHA: sha, Started: now.Add(-time.Second), Finished: now, Conclusion: conc,
		Agents: []*result.Agent{{Name: "lint", Result: map[bool]string{true: "success", false: "failure"}[outcome == result.Success], Jobs: []string{"lint"}}},
		Jobs:   []*result.Job{j}, Report: "## review: " + string(conc) + "\n\n| agent | result |\n|---|---|\n| lint | x |\n"}
}

// drive sends a whole run's worth of updates to r.
func drive(t *testing.T, r reporters.Reporter, info *reporters.RunInfo, res *result.Run) {
	t.Helper()
	for _, k := range []reporters.Kind{reporters.RunQueued, reporters.RunStarted, reporters.JobStarted, reporters.RunFinished} {
		if err := r.Report(t.Context(), reporters.Update{Kind: k, Run: info, Result: res, Time: time.Now()}); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
}

func operations(f *githubfake.Fake) []string {
	var ops []string
	for _, r := range f.Requests() {
		ops = append(ops, r.Operation)
	}
	return ops
}

func TestCheckRunLifecycle(t *testing.T) {
	f := githubfake.New(t)
	cr := reporters.NewCheckRun(client(t, f), repo)
	drive(t, cr, runInfo("run-1", plan.Publish{Check: true}, nil), finished(2, result.Failed))

	want := "[checks/list-for-ref checks/create checks/update checks/update]"
	if got := fmt.Sprint(operations(f)); got != want {
		t.Errorf("requests = %s, want %s", got, want)
	}
	runs := f.CheckRuns()
	if len(runs) != 1 {
		t.Fatalf("check runs = %d, want 1", len(runs))
	}
	c := runs[0]
	if fmt.Sprint(c.History) != "[queued in_progress completed]" || c.Conclusion != "failure" || c.Name != "agents/review" ||
		c.ExternalID != "run-1" || c.DetailsURL != "https://runner.example/runs/run-1" || c.HeadSHA != sha {
		t.Errorf("check run = %+v", c)
	}
	if !strings.Contains(c.Summary, "| lint |") || !strings.Contains(c.Title, "failure") || !strings.Contains(c.Title, "2 findings") {
		t.Errorf("title %q / summary %q", c.Title, c.Summary)
	}
	// The failing job's log tail, fenced so its own backticks cannot break out.
	if !strings.Contains(c.Text, "### lint (failed, exit 2)") || !strings.Contains(c.Text, "````\nstep 1") || !strings.Contains(c.Text, "ERROR: boom") {
		t.Errorf("text = %q", c.Text)
	}
	if len(c.Annotations) != 2 || c.Annotations[0]["annotation_level"] != "failure" || c.Annotations[1]["annotation_level"] != "warning" ||
		c.Annotations[0]["path"] != "src/f0.go" || c.Annotations[1]["start_line"] != float64(2) {
		t.Errorf("annotations = %v", c.Annotations)
	}
}

func TestCheckRunAnnotationsGoInBatchesOf50(t *testing.T) {
	tests := []struct {
		findings, updates int // updates after create: in_progress + completing + extra batches
	}{
		{0, 2}, {50, 2}, {51, 3}, {120, 4},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d findings", tc.findings), func(t *testing.T) {
			f := githubfake.New(t)
			drive(t, reporters.NewCheckRun(client(t, f), repo), runInfo("run-1", plan.Publish{Check: true}, nil), finished(tc.findings, result.Success))
			ups := f.RequestsTo("checks/update")
			if len(ups) != tc.updates {
				t.Fatalf("updates = %d, want %d", len(ups), tc.updates)
			}
			for _, u := range ups {
				if n := strings.Count(string(u.Body), `"annotation_level"`); n > reporters.MaxAnnotationsPerRequest {
					t.Errorf("an update carries %d annotations", n)
				}
			}
			c := f.CheckRuns()[0]
			if len(c.Annotations) != tc.findings || c.Status != "completed" || c.Conclusion != "success" {
				t.Errorf("check run has %d annotations (%s/%s), want %d", len(c.Annotations), c.Status, c.Conclusion, tc.findings)
			}
		})
	}
}

func TestRetriedCheckRunUpdatesInsteadOfDuplicating(t *testing.T) {
	f := githubfake.New(t)
	rest := client(t, f)
	info := runInfo("run-7", plan.Publish{Check: true}, nil)
	// First attempt dies after starting.
	first := reporters.NewCheckRun(rest, repo)
	for _, k := range []reporters.Kind{reporters.RunQueued, reporters.RunStarted} {
		if err := first.Report(t.Context(), reporters.Update{Kind: k, Run: info}); err != nil {
			t.Fatal(err)
		}
	}
	// Another run of the same routine on the same commit must not be mistaken for ours.
	drive(t, reporters.NewCheckRun(rest, repo), runInfo("run-other", plan.Publish{Check: true}, nil), finished(0, result.Success))
	// The retry (a new reporter, same run id) finds the first attempt's check run.
	retry := reporters.NewCheckRun(rest, repo)
	drive(t, retry, info, finished(1, result.Success))

	if n := len(f.RequestsTo("checks/create")); n != 2 {
		t.Errorf("creates = %d, want 2 (run-7 once, run-other once)", n)
	}
	var mine []githubfake.CheckRun
	for _, c := range f.CheckRuns() {
		if c.ExternalID == "run-7" {
			mine = append(mine, c)
		}
	}
	if len(mine) != 1 || retry.ID() != first.ID() {
		t.Fatalf("run-7 has %d check runs (ids %d, %d)", len(mine), first.ID(), retry.ID())
	}
	if got := fmt.Sprint(mine[0].History); got != "[queued in_progress queued in_progress completed]" {
		t.Errorf("history = %s", got)
	}
}

func TestCheckOutputFitsGitHubLimits(t *testing.T) {
	res := finished(0, result.Failed)
	res.Report = strings.Repeat("é", 70000)
	res.Jobs[0].LogTail = strings.Repeat("x\n", 100000)
	title, summary, text := reporters.CheckOutput(runInfo("r", plan.Publish{}, nil), res)
	if len(summary) > reporters.MaxCheckText || len(text) > reporters.MaxCheckText || len(title) > 255 {
		t.Errorf("lengths: title %d summary %d text %d", len(title), len(summary), len(text))
	}
	if !strings.HasSuffix(summary, "(truncated)") || strings.ContainsRune(summary, '\uFFFD') {
		t.Error("summary not cut cleanly on a rune boundary")
	}
}

func prEvent(fork bool) *event.Event {
	return &event.Event{Kind: event.KindPullRequest, Action: "opened", Repo: event.Repo{Owner: "o", Name: "r", DefaultBranch: "main"},
		SHA: sha, Branch: "main", PullRequest: &event.PullRequest{Number: 5, HeadRef: "feature", HeadSHA: sha, BaseRef: "main", Fork: fork}}
}

func TestCommentFoundByMarkerAndEdited(t *testing.T) {
	f := githubfake.New(t)
	rest := client(t, f)
	ctx := t.Context()
	// A person quoting the marker inside their comment does not make it ours.
	if _, _, err := rest.Issues.CreateComment(ctx, "o", "r", 5, &gh.IssueComment{Body: gh.String("see " + reporters.CommentMarker("review"))}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		res := finished(i, result.Success)
		res.Report = fmt.Sprintf("report %d", i)
		drive(t, reporters.NewComment(rest, repo), runInfo(fmt.Sprintf("run-%d", i), plan.Publish{Comment: true}, prEvent(false)), res)
	}
	// Another routine gets its own comment.
	other := runInfo("run-x", plan.Publish{Comment: true}, prEvent(false))
	other.Plan.Routine = "audit"
	drive(t, reporters.NewComment(rest, repo), other, finished(0, result.Success))

	cs := f.Comments()
	if len(cs) != 3 {
		t.Fatalf("comments = %d, want 3 (the person's, review's, audit's)", len(cs))
	}
	if !strings.HasPrefix(cs[1].Body, reporters.CommentMarker("review")) || !strings.Contains(cs[1].Body, "report 1") || cs[1].Updates != 1 || cs[1].Issue != 5 {
		t.Errorf("review comment = %+v", cs[1])
	}
	if !strings.HasPrefix(cs[2].Body, reporters.CommentMarker("audit")) || cs[0].Updates != 0 {
		t.Errorf("audit comment = %+v, person's = %+v", cs[2], cs[0])
	}
	if n := len(f.RequestsTo("issues/update-comment")); n != 1 {
		t.Errorf("edits = %d, want 1", n)
	}
}

func TestCommentOnlyOnPullRequests(t *testing.T) {
	f := githubfake.New(t)
	drive(t, reporters.NewComment(client(t, f), repo), runInfo("run-1", plan.Publish{Comment: true}, nil), finished(0, result.Success))
	if n := len(f.Requests()); n != 0 {
		t.Errorf("a push run made %d requests", n)
	}
}

// gitRepos makes a local repository with one commit and a bare remote standing in for GitHub,
// and returns them with the base commit and a patch adding fix.txt.
func gitRepos(t *testing.T) (local, remote, base string, patch []byte) {
	t.Helper()
	local, remote = t.TempDir(), t.TempDir()
	gittest.Git(t, remote, "init", "--quiet", "--bare")
	gittest.Git(t, local, "init", "--quiet", "-b", "main")
	if err := os.WriteFile(filepath.Join(local, "a.txt"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gittest.Git(t, local, "add", "a.txt")
	gittest.Git(t, local, "commit", "--quiet", "-m", "base")
	base = gittest.Git(t, local, "rev-parse", "HEAD")
	if err := os.WriteFile(filepath.Join(local, "fix.txt"), []byte("fixed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gittest.Git(t, local, "add", "fix.txt")
	patch = []byte(gittest.Git(t, local, "diff", "--cached", "--binary", "HEAD") + "\n")
	gittest.Git(t, local, "reset", "--quiet", "--hard")
	return local, remote, base, patch
}

func TestPullRequestCreatedOnceThenUpdated(t *testing.T) {
	f := githubfake.New(t)
	rest := client(t, f)
	local, remote, base, patch := gitRepos(t)
	var tokens int
	cfg := reporters.PullRequestConfig{RepoDir: local, RemoteURL: "file://" + remote,
		Token: func(context.Context) (string, error) { tokens++; return "ghs_secret", nil }}
	for i, title := range []string{"Fixes", "Fixes, again"} {
		info := runInfo(fmt.Sprintf("run-%d", i), plan.Publish{PullRequest: &plan.PullRequest{Title: title, Body: "Intro.", Draft: true, Key: "main"}}, nil)
		info.Plan.SHA = base
		res := finished(0, result.Success)
		res.SHA, res.Patch = base, patch
		pr := reporters.NewPullRequest(rest, repo, cfg)
		drive(t, pr, info, res)
		if pr.Number() != 1 || pr.URL() == "" {
			t.Errorf("run %d: PR number %d url %q", i, pr.Number(), pr.URL())
		}
	}
	prs := f.PullRequests()
	if len(prs) != 1 {
		t.Fatalf("pull requests = %d, want 1", len(prs))
	}
	p := prs[0]
	if p.Head != "agents/review/main" || p.Base != "main" || !p.Draft || p.Title != "Fixes, again" || p.Updates != 1 ||
		!strings.HasPrefix(p.Body, "Intro.") || !strings.Contains(p.Body, "run `run-1`") {
		t.Errorf("PR = %+v", p)
	}
	if got := fmt.Sprint(operations(f)); got != "[pulls/list pulls/create pulls/list pulls/update]" {
		t.Errorf("requests = %s", got)
	}
	// The branch really exists on the remote with the change, committed by the runner.
	head := gittest.Git(t, remote, "rev-parse", "refs/heads/agents/review/main")
	if got := gittest.Git(t, remote, "show", head+":fix.txt"); got != "fixed" {
		t.Errorf("fix.txt on the branch = %q", got)
	}
	if parent := gittest.Git(t, remote, "rev-parse", head+"^"); parent != base {
		t.Errorf("branch commit's parent = %s, want the run's commit %s", parent, base)
	}
	if tokens != 2 {
		t.Errorf("token asked %d times, want once per push", tokens)
	}
	// The token never lands in the remote's or the local repository's config.
	for _, dir := range []string{local, remote} {
		if cfgText, _ := os.ReadFile(filepath.Join(dir, "config")); strings.Contains(string(cfgText), "ghs_secret") {
			t.Errorf("token written to %s/config", dir)
		}
		if cfgText, _ := os.ReadFile(filepath.Join(dir, ".git", "config")); strings.Contains(string(cfgText), "ghs_secret") {
			t.Errorf("token written to %s/.git/config", dir)
		}
	}
}

func TestPullRequestTargets(t *testing.T) {
	tests := []struct {
		name     string
		ev       *event.Event
		wantBase string // "" means no PR at all
		conc     result.Conclusion
	}{
		{"a pull request event targets the PR's head branch", prEvent(false), "feature", result.ConclusionSuccess},
		{"a push targets the pushed branch", &event.Event{Kind: event.KindPush, Repo: event.Repo{Owner: "o", Name: "r", DefaultBranch: "main"}, Branch: "release/1"}, "release/1", result.ConclusionSuccess},
		{"a tag push targets the default branch", &event.Event{Kind: event.KindPush, Repo: event.Repo{Owner: "o", Name: "r", DefaultBranch: "trunk"}, Tag: "v1"}, "trunk", result.ConclusionSuccess},
		{"a fork's pull request gets none", prEvent(true), "", result.ConclusionSuccess},
		{"a failed run gets none", prEvent(false), "", result.ConclusionFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := githubfake.New(t)
			local, remote, base, patch := gitRepos(t)
			info := runInfo("run-1", plan.Publish{PullRequest: &plan.PullRequest{Title: "T", Key: "k"}}, tc.ev)
			res := finished(0, result.Success)
			res.SHA, res.Patch, res.Conclusion = base, patch, tc.conc
			drive(t, reporters.NewPullRequest(client(t, f), repo, reporters.PullRequestConfig{RepoDir: local, RemoteURL: "file://" + remote}), info, res)
			prs := f.PullRequests()
			if tc.wantBase == "" {
				if len(prs) != 0 || len(f.Requests()) != 0 {
					t.Errorf("made %d PRs with %d requests, want none", len(prs), len(f.Requests()))
				}
				return
			}
			if len(prs) != 1 || prs[0].Base != tc.wantBase {
				t.Errorf("PRs = %+v, want one into %s", prs, tc.wantBase)
			}
		})
	}
}

func TestForkNoteInCheckRunSummary(t *testing.T) {
	info := runInfo("r", plan.Publish{PullRequest: &plan.PullRequest{Title: "T", Key: "k"}}, prEvent(true))
	_, summary, _ := reporters.CheckOutput(info, finished(0, result.Success))
	if !strings.Contains(summary, "no pull request was opened") || !strings.Contains(summary, "fork") {
		t.Errorf("summary = %q", summary)
	}
}
