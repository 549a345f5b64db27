package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
)

// setupRunPages is setup with a run directory, as the daemon has.
func setupRunPages(t *testing.T) (*httptest.Server, store.Store, string) {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "runner.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	runsDir := t.TempDir()
	mux := http.NewServeMux()
	(&UI{Store: st, Controller: &fakeController{}, RunsDir: runsDir}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, st, runsDir
}

// fixtureResult is a finished run: a fanned-out audit, three replicas of fix judged by pick,
// one job refused egress, one kept patch in conflict.
func fixtureResult(runID string) *result.Run {
	t0 := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	job := func(id, agent string, replica int, m map[string]any, o result.Outcome, secs int, cost float64, in, out int) *result.Job {
		return &result.Job{ID: id, Agent: agent, Replica: replica, Matrix: m, Outcome: o, Started: t0, Finished: t0.Add(time.Duration(secs) * time.Second),
			Usage: result.Usage{CostUSD: cost, InputTokens: in, OutputTokens: out, Turns: 2}}
	}
	jobs := []*result.Job{
		job("audit[api]", "audit", 0, map[string]any{"svc": "api"}, result.Success, 42, 0.12, 12345, 678),
		job("audit[web]", "audit", 0, map[string]any{"svc": "web"}, result.Failed, 7, 0.003, 100, 20),
		job("fix#1", "fix", 1, nil, result.Success, 90, 0.5, 1000, 100),
		job("fix#2", "fix", 2, nil, result.Success, 95, 0.5, 1000, 100),
		job("fix#3", "fix", 3, nil, result.TimedOut, 600, 0.25, 500, 50),
		job("pick", "pick", 0, nil, result.Success, 12, 0.05, 300, 30),
	}
	jobs[1].Blocked = []string{"evil.example:443"}
	jobs[1].Error = "exit status 1 <b>bold</b>"
	jobs[2].Outputs = map[string]any{"verdict": "fix-null-check", "score": 0.9}
	jobs[2].Findings = []result.Finding{{Path: "api/h.go", Line: 12, Level: "warning", Message: "nil <check>"}}
	jobs[2].Changes = &result.Changes{PatchSize: 40, Files: []result.FileChange{{Path: "api/h.go", Status: "modified"}}}
	return &result.Run{ID: runID, Routine: "nightly", SHA: "abc", Started: t0, Finished: t0.Add(10 * time.Minute), Conclusion: result.ConclusionFailure,
		Agents: []*result.Agent{
			{Name: "audit", Result: "failure", Jobs: []string{"audit[api]", "audit[web]"}},
			{Name: "fix", Result: "success", Jobs: []string{"fix#1", "fix#2", "fix#3"}, Vote: &result.Vote{Key: "verdict", Quorum: 2,
				Winner: "fix-null-check", Reached: true, Tally: map[string]int{"fix-null-check": 2, "other": 1}, Dissent: []string{"fix#3"}, WinningJob: "fix#1", Judge: "pick"}},
			{Name: "pick", Result: "success", Jobs: []string{"pick"}},
		},
		Jobs:      jobs,
		Conflicts: []result.Conflict{{Job: "fix#2", Files: []string{"keep.txt"}}},
		Report:    "# from result",
	}
}

// completedRun stores a finished run with res as its result.json and the given files.
func completedRun(t *testing.T, st store.Store, res *result.Run, files map[string]string) string {
	t.Helper()
	ctx := t.Context()
	run, _, err := st.CreateRun(ctx, store.Run{Repo: "o/r", Routine: "nightly", SHA: "abc", EventKind: "schedule", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.UpdateRun(ctx, store.Run{ID: run.ID, Status: store.RunCompleted, Conclusion: "failure", SHA: "abc", StartedAt: now.Add(-10 * time.Minute), FinishedAt: now}); err != nil {
		t.Fatal(err)
	}
	res.ID = run.ID
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveRunFile(ctx, run.ID, "result.json", b); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := st.SaveRunFile(ctx, run.ID, name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	return run.ID
}

func wantIn(t *testing.T, page, what string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(page, s) {
			t.Errorf("%s: missing %q", what, s)
		}
	}
}

func wantNotIn(t *testing.T, page, what string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if strings.Contains(page, s) {
			t.Errorf("%s: has %q", what, s)
		}
	}
}

func TestRunPageShowsStagesVotesUsageReportAndDiff(t *testing.T) {
	srv, st, _ := setupRunPages(t)
	patch, err := os.ReadFile("render/testdata/git.patch")
	if err != nil {
		t.Fatal(err)
	}
	id := completedRun(t, st, fixtureResult(""), map[string]string{
		"report.md":         "# Night\n\n**done** [click](javascript:alert(2))\n\n<script>alert(1)</script>\n",
		"combined.patch":    string(patch),
		"pull_request.json": `{"html_url":"https://github.com/o/r/pull/7","number":7,"repo":"o/r"}`,
		"check_run.json":    `{"html_url":"https://github.com/o/r/runs/99","id":99,"name":"agents/night","repo":"o/r"}`,
	})
	c, _ := signIn(t, srv, st, "viewer", store.ScopeRead)
	code, page := get(t, c, srv.URL+"/ui/runs/"+id)
	if code != http.StatusOK {
		t.Fatalf("run page: %d\n%s", code, page)
	}
	wantIn(t, page, "stages and jobs",
		`<a href="/ui/runs/`+id+`/jobs/audit%5Bapi%5D">audit[api]</a>`, "svc=api", "svc=web",
		`/jobs/fix%231">fix#1</a> <span class="badge b-win"`, "judges fix", "Judged by pick", "fix-null-check: 2, other: 1", "dissent: fix#3",
		"42s", "$0.12", "$0.0030", "12,345 in · 678 out", "timed_out",
		"blocked: <code>evil.example:443</code>", "exit status 1 &lt;b&gt;bold&lt;/b&gt;",
		"6 jobs: 4 success, 1 failed, 1 timed_out", "$1.42", "1 blocked connection",
		`href="https://github.com/o/r/pull/7"`, "o/r#7", `<a href="https://github.com/o/r/runs/99" rel="noreferrer">agents/night</a>`)
	wantIn(t, page, "report", "<h1", "Night", "<strong>done</strong>")
	wantNotIn(t, page, "report", "<script>alert", `href="javascript:`, "# from result")
	wantIn(t, page, "diff", "6 files changed", `<code>old name.txt</code> → <code>new name.txt</code>`, "82% similar",
		"Binary file changed", "mode 100644 → 100755", `<span class="badge b-deleted">deleted</span>`,
		`<td class="tx"><span class="sign">+</span>␛[31mred</td>`, `conflict: fix#2`, "<code>keep.txt</code>")
	wantNotIn(t, page, "no dispatch scope", "Re-run", "Cancel run", `data-poll=`)
	wantIn(t, page, "assets", `href="/ui/assets/runpage.css"`, `src="/ui/assets/runpage.js"`)

	for _, a := range []string{"/ui/assets/runpage.css", "/ui/assets/runpage.js"} {
		if code, _ := get(t, c, srv.URL+a); code != http.StatusOK {
			t.Errorf("%s: %d", a, code)
		}
	}
	if code, _ := get(t, c, srv.URL+"/ui/runs/nope"); code != http.StatusNotFound {
		t.Errorf("unknown run: %d, want 404", code)
	}
	d, _ := signIn(t, srv, st, "operator", store.ScopeDispatch)
	_, page = get(t, d, srv.URL+"/ui/runs/"+id)
	wantIn(t, page, "dispatch scope", `action="/ui/runs/`+id+`/rerun"`)
}

// A running run's page comes from its plan, marks jobs whose log exists as running, and polls
// its state twin, whose JSON says the same.
func TestRunningRunPageAndState(t *testing.T) {
	srv, st, runsDir := setupRunPages(t)
	ctx := t.Context()
	pl := &plan.Run{Routine: "nightly", Nodes: []*plan.Node{
		{Agent: "fix", Replicas: 2, Judge: "pick", Instances: []*plan.Instance{{ID: "fix#1", Agent: "fix", Replica: 1}, {ID: "fix#2", Agent: "fix", Replica: 2}}},
		{Agent: "pick", Needs: []string{"fix"}, Instances: []*plan.Instance{{ID: "pick", Agent: "pick"}}},
	}}
	planJSON, _ := json.Marshal(pl)
	run, _, err := st.CreateRun(ctx, store.Run{Repo: "o/r", Routine: "nightly", SHA: "abc", EventKind: "dispatch", Plan: planJSON})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateRun(ctx, store.Run{ID: run.ID, Status: store.RunRunning, SHA: "abc", Plan: planJSON, StartedAt: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(runsDir, run.ID, "jobs", runner.JobDirName("fix#1"))
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(logDir, "log.txt"), []byte("working <on> it\x1b[0m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A symlinked log in the run directory is not followed: fix#2 stays pending.
	other := filepath.Join(runsDir, run.ID, "jobs", runner.JobDirName("fix#2"))
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(other, "log.txt")); err != nil {
		t.Fatal(err)
	}
	c, _ := signIn(t, srv, st, "viewer", store.ScopeRead)
	code, page := get(t, c, srv.URL+"/ui/runs/"+run.ID)
	if code != http.StatusOK {
		t.Fatalf("run page: %d", code)
	}
	wantIn(t, page, "running run", `data-poll="/ui/runs/`+run.ID+`/state"`, "judges fix",
		`<tr data-job="fix#1">`, `job-status badge o-running">running</span>`, `job-status badge o-pending">pending</span>`)

	code, body := get(t, c, srv.URL+"/ui/runs/"+run.ID+"/state")
	var state runState
	if code != http.StatusOK || json.Unmarshal([]byte(body), &state) != nil {
		t.Fatalf("state: %d %s", code, body)
	}
	got := map[string]string{}
	for _, j := range state.Jobs {
		got[j.ID] = j.Status
	}
	if state.Status != "running" || state.Finished || state.Elapsed == "" || got["fix#1"] != "running" || got["fix#2"] != "pending" || got["pick"] != "pending" {
		t.Fatalf("state = %+v", state)
	}

	// The job page of a running job streams its log, shows what is there so far (escaped),
	// and offers to cancel only with dispatch scope.
	code, page = get(t, c, srv.URL+"/ui/runs/"+run.ID+"/jobs/fix%231")
	if code != http.StatusOK {
		t.Fatalf("job page: %d %s", code, page)
	}
	wantIn(t, page, "running job", `data-live="/ui/runs/`+run.ID+`/jobs/fix%231/log"`, "working &lt;on&gt; it␛[0m", "running")
	wantNotIn(t, page, "read scope", "Cancel job")
	d, _ := signIn(t, srv, st, "operator", store.ScopeDispatch)
	_, page = get(t, d, srv.URL+"/ui/runs/"+run.ID+"/jobs/fix%231")
	wantIn(t, page, "dispatch scope", `action="/ui/runs/`+run.ID+`/jobs/fix%231/cancel"`, "Cancel job")
	if code, _ := get(t, c, srv.URL+"/ui/runs/"+run.ID+"/jobs/nobody"); code != http.StatusNotFound {
		t.Errorf("unknown job: %d, want 404", code)
	}
	if code, _ := get(t, c, srv.URL+"/ui/runs/"+run.ID+"/jobs/fix%231/log"); code != http.StatusNotFound {
		t.Errorf("live log without a LogStream: %d, want 404 (the page falls back to the stored log)", code)
	}
}

func TestJobPageShowsStoredLogPatchOutputsAndFindings(t *testing.T) {
	srv, st, _ := setupRunPages(t)
	dir := "jobs/" + runner.JobDirName("fix#1")
	long := strings.Repeat("old line\n", (maxShownLog/9)+100)
	id := completedRun(t, st, fixtureResult(""), map[string]string{
		dir + "/log.txt":    long + "<script>alert(1)</script>\x1b[31mred\x9b\n",
		dir + "/patch.diff": "diff --git a/api/h.go b/api/h.go\n--- a/api/h.go\n+++ b/api/h.go\n@@ -1 +1 @@\n-if x {\n+if x != nil {\n",
	})
	c, _ := signIn(t, srv, st, "operator", store.ScopeDispatch)
	code, page := get(t, c, srv.URL+"/ui/runs/"+id+"/jobs/fix%231")
	if code != http.StatusOK {
		t.Fatalf("job page: %d\n%s", code, page)
	}
	wantIn(t, page, "job page", "Job <code>fix#1</code>", "success", "1m30s", "$0.50", "1,000 in · 100 out", "Exit code", "chosen",
		"<code>verdict</code>", "fix-null-check", "0.9", "api/h.go:12", "nil &lt;check&gt;",
		`<span class="sign">+</span>if x != nil {`, "1 file changed",
		"&lt;script&gt;alert(1)&lt;/script&gt;␛[31mred\ufffd", "of this log are left off")
	wantNotIn(t, page, "finished job", "<script>alert", "data-live", "Cancel job")
	if strings.Count(page, "old line") > maxShownLog/9 {
		t.Errorf("the log is not bounded to its last %d bytes", maxShownLog)
	}
	// A job without a kept log or patch says so.
	_, page = get(t, c, srv.URL+"/ui/runs/"+id+"/jobs/pick")
	wantIn(t, page, "job without files", "No log is kept for this job.")
	wantNotIn(t, page, "job without changes", "<h2>Changes</h2>")
	_, page = get(t, c, srv.URL+"/ui/runs/"+id+"/jobs/audit%5Bweb%5D")
	wantIn(t, page, "blocked job", "Blocked egress", "evil.example:443")
}

func TestRunPagesNeedASession(t *testing.T) {
	srv, st, _ := setupRunPages(t)
	id := completedRun(t, st, fixtureResult(""), nil)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/ui/runs/" + id, "/ui/runs/" + id + "/jobs/pick"} {
		res, err := c.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/ui/login") {
			t.Errorf("%s without a session: %s to %q, want a redirect to the login", p, res.Status, res.Header.Get("Location"))
		}
	}
	res, err := c.Get(srv.URL + "/ui/runs/" + id + "/state")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("state without a session: %s, want 401", res.Status)
	}
}

// On the daemon that ran the job, its patch is read from the run directory (changes.patch),
// never through a symlink an agent could have left there.
func TestJobPatchFromTheRunDirectory(t *testing.T) {
	srv, st, runsDir := setupRunPages(t)
	id := completedRun(t, st, fixtureResult(""), nil)
	dir := filepath.Join(runsDir, id, "jobs", runner.JobDirName("fix#1"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	local := "diff --git a/local.go b/local.go\n--- a/local.go\n+++ b/local.go\n@@ -1 +1 @@\n-a\n+from the run directory\n"
	if err := os.WriteFile(filepath.Join(dir, "changes.patch"), []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	c, _ := signIn(t, srv, st, "viewer", store.ScopeRead)
	_, page := get(t, c, srv.URL+"/ui/runs/"+id+"/jobs/fix%231")
	wantIn(t, page, "local patch", "<code>local.go</code>", "from the run directory")

	secret := filepath.Join(t.TempDir(), "secret.patch")
	if err := os.WriteFile(secret, []byte(strings.Replace(local, "from the run directory", "through a link", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "changes.patch")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "changes.patch")); err != nil {
		t.Fatal(err)
	}
	_, page = get(t, c, srv.URL+"/ui/runs/"+id+"/jobs/fix%231")
	wantNotIn(t, page, "symlinked patch", "through a link")
	wantIn(t, page, "symlinked patch", "its patch is not kept here")
}

// While a run goes on, the jobs of the workflow its orchestrator wrote show on its page as they
// start (they are in the store, not the plan), and each has its job page.
func TestRunPageShowsAWorkflowsJobsAsTheyStart(t *testing.T) {
	srv, st, _ := setupRunPages(t)
	ctx := t.Context()
	pl := &plan.Run{Routine: "migrate", Nodes: []*plan.Node{
		{Agent: "lead", Orchestrate: &plan.Orchestration{MaxAgents: 10}, Instances: []*plan.Instance{{ID: "lead", Agent: "lead"}}},
	}}
	planJSON, _ := json.Marshal(pl)
	run, _, err := st.CreateRun(ctx, store.Run{Repo: "o/r", Routine: "migrate", SHA: "abc", EventKind: "dispatch", Plan: planJSON})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateRun(ctx, store.Run{ID: run.ID, Status: store.RunRunning, SHA: "abc", Plan: planJSON, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, js := range [][2]string{{"lead", store.RunJobFinished}, {"lead/plan", store.RunJobFinished}, {"lead/edit[services/api]", store.RunJobRunning}} {
		if err := st.SetRunJobState(ctx, run.ID, js[0], js[1]); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := signIn(t, srv, st, "viewer", store.ScopeRead)
	code, page := get(t, c, srv.URL+"/ui/runs/"+run.ID)
	if code != http.StatusOK {
		t.Fatalf("run page: %d", code)
	}
	wantIn(t, page, "workflow stages", "<h3>lead/plan ", "<h3>lead/edit ", `<tr data-job="lead/edit[services/api]">`,
		`href="/ui/runs/`+run.ID+`/jobs/lead%2Fedit%5Bservices%2Fapi%5D"`, `job-status badge o-running">running</span>`)
	code, page = get(t, c, srv.URL+"/ui/runs/"+run.ID+"/jobs/lead%2Fedit%5Bservices%2Fapi%5D")
	if code != http.StatusOK {
		t.Fatalf("a workflow job's page: %d\n%s", code, page)
	}
	wantIn(t, page, "workflow job page", "lead/edit[services/api]", "running")
}
