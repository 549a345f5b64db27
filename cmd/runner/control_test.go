package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/livelog"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
	"github.com/agentrunner/agentrunner/web"
	"github.com/agentrunner/agentrunner/workspace"
)

// linkRecorder keeps the details links a run's reporters were given.
type linkRecorder struct {
	mu    sync.Mutex
	links []string
}

func (l *linkRecorder) Report(_ context.Context, u reporters.Update) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.links = append(l.links, u.Run.DetailsURL)
	return nil
}

func (l *linkRecorder) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.links...)
}

// testDaemon serves the API and the run pages of a daemon as `runner serve` wires them, with
// the fake sandbox (its agents sleep for AGENTRUNNER_FAKE_SLEEP), on one repository acme/app;
// links records the details links its runs report.
func testDaemon(t *testing.T, files map[string]string) (st store.Store, links *linkRecorder, url, token string) {
	t.Helper()
	repo := gitRepo(t, files)
	repos, err := daemon.NewRepos([]daemon.Repo{{Name: "acme/app", URL: repo, DefaultBranch: "main"}})
	if err != nil {
		t.Fatal(err)
	}
	wsm, err := workspace.NewManager(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wsm.Close() })
	st = storetest.SQLite(t).Open(t)
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	runsDir := filepath.Join(t.TempDir(), "runs")
	page, detailsURL, err := runPages(t.Context(), st, runsDir, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	links = &linkRecorder{}
	live := livelog.New(livelog.Options{Store: st, Self: "cli-test", RunsDir: runsDir, Batch: 10 * time.Millisecond})
	t.Cleanup(func() { _ = live.Close() })
	pipe := &daemon.GitPipeline{Workspaces: wsm, Sandbox: daemon.FakeSandbox{}, Repos: repos, RunsDir: runsDir, Files: st, Jobs: st,
		JobPoll: 50 * time.Millisecond, DetailsURL: detailsURL, Reporters: func(*reporters.RunInfo, string) reporters.Reporter { return links },
		Live: live}
	d, err := daemon.New(daemon.Options{Store: st, Pipeline: pipe, Repos: repos, Poll: 20 * time.Millisecond,
		NoSchedules: true, ShutdownGrace: time.Second, Owner: "cli-test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	(&server.API{Store: st, Dispatcher: d, RunsDir: runsDir, Logs: live}).Register(mux)
	page.Register(mux)
	(&web.UI{Store: st, Controller: uiControl{d}}).Register(mux)
	if token, err = st.CreateToken(t.Context(), store.Token{Name: "cli", Scope: store.ScopeDispatch}); err != nil {
		t.Fatal(err)
	}
	return st, links, srv.URL, token
}

// The CLI steers a real daemon: `logs -f` follows a running agent's log and ends with the job,
// `cancel` stops the run, `rerun` queues it again, and each refuses what does not apply with
// the daemon's reason. The run's page shows how it ended.
func TestCancelRerunAndFollowFromTheCLI(t *testing.T) {
	st, links, url, tok := testDaemon(t, map[string]string{".agents/long.yaml": `name: long
on: {dispatch: {}}
env: {AGENTRUNNER_FAKE_SLEEP: 1h}
agents:
  a: {image: x, command: [x]}
`})
	api := []string{"--server", url, "--token", tok}
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, append(args, api...)...)
	}
	code, out, errOut := cli("dispatch", "acme/app", "long")
	if code != 0 {
		t.Fatalf("dispatch: exit %d %s", code, errOut)
	}
	id := strings.TrimSpace(out)
	status := func() string {
		r, _ := st.GetRun(t.Context(), id)
		return r.Status
	}
	waitCLI(t, "the run to start", func() bool { return status() == store.RunRunning })

	// The follower's output is read line by line as it prints; its stderr once it ended.
	pr, pw := io.Pipe()
	var followErr bytes.Buffer
	ended := make(chan int, 1)
	go func() {
		ended <- run(t.Context(), append([]string{"logs", id, "a", "-f"}, api...), nil, pw, &followErr)
		pw.Close()
	}()
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	printed := func(timeout time.Duration) (all []string) {
		deadline := time.After(timeout)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					return all
				}
				if all = append(all, l); strings.Contains(l, "fake sandbox: a") {
					return all
				}
			case <-deadline:
				return all
			}
		}
	}
	if got := printed(30 * time.Second); len(got) == 0 || !strings.Contains(got[len(got)-1], "fake sandbox: a") {
		t.Fatalf("logs -f printed %q while the agent runs, want its log", got)
	}
	select {
	case c := <-ended:
		t.Fatalf("logs -f ended (exit %d, %s) while the run goes on", c, followErr.String())
	default:
	}

	if code, out, errOut := cli("cancel", id, "--reason", "stop it"); code != 0 || !strings.Contains(out, "run "+id) || !strings.Contains(out, "cancelled") {
		t.Fatalf("cancel: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	select {
	case c := <-ended:
		if rest := printed(5 * time.Second); c != 0 || strings.Contains(strings.Join(rest, "\n"), "fake sandbox: a") {
			t.Errorf("logs -f: exit %d, then printed %q (%s); want exit 0 and the log once", c, rest, followErr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("logs -f goes on after the run was cancelled")
	}
	// logs -f ends with the job; the run concludes a moment later.
	waitCLI(t, "the run to conclude", func() bool { return status() == store.RunCompleted })
	if r, _ := st.GetRun(t.Context(), id); r.Status != store.RunCompleted || r.Conclusion != "cancelled" || !strings.Contains(r.Error, "stop it") {
		t.Errorf("after cancel: %s/%s %q", r.Status, r.Conclusion, r.Error)
	}
	// The link the check run got is the run's page in the control room on the public URL,
	// which asks a browser without a session to sign in first.
	got := links.all()
	if len(got) == 0 || got[0] != url+"/ui/runs/"+id {
		t.Fatalf("details links %q, want the control room's run page on the public URL", got)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(got[0])
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/ui/login?next="+neturl.QueryEscape("/ui/runs/"+id) {
		t.Errorf("GET %s without a session: %s to %q, want the sign-in", got[0], resp.Status, loc)
	}
	// The signed summary page still opens without a token, and links on to the control room;
	// the bare page does not open.
	key, err := st.Key(t.Context(), server.RunPageKeyName)
	if err != nil {
		t.Fatal(err)
	}
	signed := (&server.RunPage{Key: key}).URL(url, id)
	for u, want := range map[string]int{signed: 200, url + "/runs/" + id: 404} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || want == 200 && (!strings.Contains(string(body), "cancelled") || !strings.Contains(string(body), "stop it") ||
			!strings.Contains(string(body), `<a href="/ui/runs/`+id+`">`)) {
			t.Errorf("GET %s: %d %s; want %d", u, resp.StatusCode, body, want)
		}
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"cancel", id}, exitFailure, "already completed"},
		{[]string{"cancel", "r-none"}, exitFailure, "no run r-none"},
		{[]string{"rerun", "r-none"}, exitFailure, "no run r-none"},
		{[]string{"logs", "r-none", "a", "-f"}, exitFailure, "no run r-none"},
		{[]string{"logs", id, "-f"}, exitUsage, "name it"},
	} {
		if code, _, errOut := cli(tc.args...); code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d saying %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}

	code, out, errOut = cli("rerun", id)
	again := strings.TrimSpace(out)
	if code != 0 || again == "" || again == id || !strings.Contains(errOut, "a re-run of "+id) {
		t.Fatalf("rerun: exit %d, stdout %q, stderr %q; want a new run id", code, out, errOut)
	}
	statusOf := func(id string) store.Run {
		r, _ := st.GetRun(t.Context(), id)
		return r
	}
	waitCLI(t, "the re-run to start", func() bool { return statusOf(again).Status == store.RunRunning })
	if r, orig := statusOf(again), statusOf(id); r.RerunOf != id || r.SHA != orig.SHA || r.Routine != orig.Routine || orig.Conclusion != "cancelled" {
		t.Errorf("re-run %+v of %+v: want rerun_of, commit and routine of the original, which stays cancelled", r, orig)
	}
	// The original's result (its job cancelled) is not the re-run's.
	if code, out, errOut := cli("runs", again); code != 0 || !strings.Contains(out, "running") || strings.Contains(out, "cancelled") || !hasLine(out, "re-run of "+id) {
		t.Errorf("runs %s during the re-run: exit %d, stdout %q, stderr %q; want it running, with no cancelled job", again, code, out, errOut)
	}
	if code, _, errOut := cli("rerun", again); code != exitFailure || !strings.Contains(errOut, "cancel it first") {
		t.Errorf("rerun of a running run: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := cli("cancel", again); code != 0 {
		t.Errorf("cancel of the re-run: exit %d %s", code, errOut)
	}
	waitCLI(t, "the re-run to be cancelled", func() bool { return statusOf(again).Status == store.RunCompleted })
}

// `runner cancel RUN JOB` stops one job while its sibling finishes and the run goes on; a job
// that does not exist, or has finished, is refused with the reason.
func TestCancelOneJobFromTheCLI(t *testing.T) {
	st, _, url, tok := testDaemon(t, map[string]string{".agents/pair.yaml": `name: pair
on: {dispatch: {}}
agents:
  slow: {image: x, command: [x], env: {AGENTRUNNER_FAKE_SLEEP: 1h}}
  quick: {image: x, command: [x], env: {AGENTRUNNER_FAKE_SLEEP: 1s}}
`})
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, append(args, "--server", url, "--token", tok)...)
	}
	code, out, errOut := cli("dispatch", "acme/app", "pair")
	if code != 0 {
		t.Fatalf("dispatch: exit %d %s", code, errOut)
	}
	id := strings.TrimSpace(out)
	jobState := func(job string) string {
		js, _ := st.RunJobs(t.Context(), id)
		for _, j := range js {
			if j.Job == job {
				return j.State
			}
		}
		return ""
	}
	waitCLI(t, "both jobs to run", func() bool { return jobState("slow") == store.RunJobRunning && jobState("quick") != "" })
	if code, _, errOut := cli("cancel", id, "nope"); code != exitFailure || !strings.Contains(errOut, `has no job "nope"`) {
		t.Errorf("cancel of an unknown job: exit %d, stderr %q", code, errOut)
	}
	if code, out, errOut := cli("cancel", id, "slow", "--reason", "too slow"); code != 0 || !strings.Contains(out, "job slow of run "+id+" cancelled") {
		t.Fatalf("cancel slow: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	waitCLI(t, "the run to end", func() bool {
		r, _ := st.GetRun(t.Context(), id)
		return r.Status == store.RunCompleted
	})
	b, err := st.RunFile(t.Context(), id, "result.json")
	if err != nil {
		t.Fatal(err)
	}
	if res := string(b); !strings.Contains(res, `"outcome": "cancelled"`) || !strings.Contains(res, "too slow") || !strings.Contains(res, `"outcome": "success"`) {
		t.Errorf("result: %s; want slow cancelled with the reason, quick a success", res)
	}
	if code, _, errOut := cli("cancel", id, "quick"); code != exitFailure || !strings.Contains(errOut, "already completed") {
		t.Errorf("cancel of a job of a finished run: exit %d, stderr %q", code, errOut)
	}
}

func waitCLI(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hasLine reports whether out has a line that reads want once runs of spaces are squeezed.
func hasLine(out, want string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(l), " ") == want {
			return true
		}
	}
	return false
}

// A daemon without live logs (an older one) answers ?follow=sse with an error: `logs -f` then
// follows by asking for the log's new bytes, and prints the log once.
func TestFollowFallsBackToPollingTheLog(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.RequestURI())
		if r.URL.Query().Get("follow") == "sse" {
			http.Error(w, `{"error":"this daemon does not follow logs live"}`, http.StatusNotImplemented)
			return
		}
		w.Header().Set("X-Run-Status", store.RunCompleted)
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader("one\ntwo\n"))
	}))
	defer srv.Close()
	code, out, errOut := runCLI(t, "logs", "r1", "a", "-f", "--server", srv.URL, "--token", "t")
	if code != 0 || out != "one\ntwo\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if len(asked) != 2 || !strings.HasSuffix(asked[0], "?follow=sse") {
		t.Errorf("requests %q, want the stream first, then the log", asked)
	}
}

// `runner spend` shows a day's metered spend by repository and routine.
func TestSpendFromTheCLI(t *testing.T) {
	st, _, url, tok := testDaemon(t, map[string]string{".agents/long.yaml": "name: long\non: {dispatch: {}}\nagents:\n  a: {image: x, command: [x]}\n"})
	if err := st.AddSpend(t.Context(), "2026-12-06", "acme/app", "migrate", 1.5); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "spend", "--day", "2026-12-06", "--server", url, "--token", tok)
	if code != 0 || !regexp.MustCompile(`acme/app\s+migrate\s+\$1\.5000`).MatchString(out) || !strings.Contains(out, "2026-12-06 in all") {
		t.Errorf("exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "spend", "--day", "soon", "--server", url, "--token", tok); code == 0 || !strings.Contains(errOut, "want a date") {
		t.Errorf("a bad day: exit %d %s", code, errOut)
	}
}
