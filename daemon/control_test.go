package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
	"github.com/agentrunner/agentrunner/workspace"
)

// firstBlocks holds the first agent it runs until its context ends, as a long agent would,
// and lets every later one succeed at once.
type firstBlocks struct {
	mu      sync.Mutex
	calls   int
	started chan struct{}
	stopped chan struct{}
}

func (s *firstBlocks) Run(ctx context.Context, _ *runner.Task, logs io.Writer) (*runner.Exit, error) {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.mu.Unlock()
	start := time.Now()
	_, _ = io.WriteString(logs, "agent at work\n")
	if n > 1 {
		return &runner.Exit{Outcome: result.Success, Started: start, Finished: time.Now()}, nil
	}
	close(s.started)
	<-ctx.Done()
	close(s.stopped)
	return &runner.Exit{Outcome: result.Cancelled, ExitCode: -1, Started: start, Finished: time.Now()}, nil
}

func (s *firstBlocks) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// ends records the conclusions reported per run.
type ends struct {
	mu   sync.Mutex
	seen map[string][]string
}

func (e *ends) Report(_ context.Context, u reporters.Update) error {
	if u.Kind == reporters.RunFinished {
		e.mu.Lock()
		e.seen[u.Run.ID] = append(e.seen[u.Run.ID], string(u.Result.Conclusion))
		e.mu.Unlock()
	}
	return nil
}

func (e *ends) of(id string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.seen[id]...)
}

// Cancel through the API stops a running agent at once (not at the next heartbeat) and
// concludes the run cancelled with the reason given; a queued run is concluded on the spot,
// check run included; a finished run cannot be cancelled, an unfinished one not re-run; a
// re-run runs the same run again, to success.
func TestCancelAndRerunThroughTheAPI(t *testing.T) {
	repoDir, head := gittest.Repo(t, map[string]string{".agents/long.yaml": `name: long
on: {dispatch: {}}
agents:
  a: {image: x, command: [x]}
`})
	repos, err := daemon.NewRepos([]daemon.Repo{{Name: "acme/app", URL: repoDir, DefaultBranch: "main"}})
	if err != nil {
		t.Fatal(err)
	}
	wsm, err := workspace.NewManager(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wsm.Close() })
	st := storetest.SQLite(t).Open(t)
	sb := &firstBlocks{started: make(chan struct{}), stopped: make(chan struct{})}
	seen := &ends{seen: map[string][]string{}}
	pipe := &daemon.GitPipeline{Workspaces: wsm, Sandbox: sb, Repos: repos, RunsDir: t.TempDir(), Files: st,
		Reporters: func(*reporters.RunInfo, string) reporters.Reporter { return seen }}
	// A lease of 30s is heartbeated every 10s: a cancel that waited for the heartbeat would
	// take that long. One worker: a second run stays queued while the first runs.
	d := runDaemon(t, daemon.Options{Store: st, Pipeline: pipe, Repos: repos, Poll: 20 * time.Millisecond,
		LeaseTTL: 30 * time.Second, Workers: 1, NoSchedules: true, ShutdownGrace: 5 * time.Second})
	tok, err := st.CreateToken(t.Context(), store.Token{Name: "ops", Scope: store.ScopeDispatch})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	(&server.API{Store: st, Dispatcher: d}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	post := func(path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		b, _ := io.ReadAll(resp.Body)
		if err := json.NewDecoder(bytes.NewReader(b)).Decode(&out); err != nil {
			t.Fatalf("POST %s: %d, not JSON: %q", path, resp.StatusCode, b)
		}
		return resp.StatusCode, out
	}
	run := func(id string) store.Run { // zero until the intake made the run
		r, _ := st.GetRun(t.Context(), id)
		return r
	}
	dispatch := func() string {
		code, res := post("/api/v1/repos/acme/app/routines/long/dispatch", "")
		if code != http.StatusAccepted {
			t.Fatalf("dispatch: %d %v", code, res)
		}
		return res["run_id"].(string)
	}

	first := dispatch()
	select {
	case <-sb.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not start")
	}
	if code, res := post("/api/v1/runs/"+first+"/rerun", ""); code != http.StatusConflict || !strings.Contains(res["error"].(string), "cancel it first") {
		t.Errorf("rerun of a running run: %d %v, want 409 saying to cancel it first", code, res)
	}

	// A queued run: no worker holds it, the cancel concludes it.
	queued := dispatch()
	waitUntil(t, "the second run to be queued", func() bool { return run(queued).Status == store.RunQueued })
	code, res := post("/api/v1/runs/"+queued+"/cancel", `{"reason":"not tonight"}`)
	if r := run(queued); code != http.StatusOK || res["status"] != store.RunCompleted || r.Conclusion != "cancelled" || !strings.Contains(r.Error, "not tonight") {
		t.Errorf("cancel of a queued run: %d %v, run %s/%s %q; want 200 and the run cancelled with the reason", code, res, r.Status, r.Conclusion, r.Error)
	}
	if got := seen.of(queued); len(got) != 1 || got[0] != "cancelled" {
		t.Errorf("the queued run's check run concluded %q, want cancelled", got)
	}

	// The running run stops now, not at the next heartbeat.
	asked := time.Now()
	code, res = post("/api/v1/runs/"+first+"/cancel", `{"reason":"wrong branch"}`)
	if code != http.StatusAccepted && code != http.StatusOK || res["cancelled_jobs"] != float64(1) {
		t.Errorf("cancel of a running run: %d %v, want 202 with one job cancelled", code, res)
	}
	select {
	case <-sb.stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the agent still runs 5s after the cancel")
	}
	waitUntil(t, "the cancelled run to conclude", func() bool { return run(first).Status == store.RunCompleted })
	if r := run(first); r.Conclusion != "cancelled" || !strings.Contains(r.Error, "wrong branch") || time.Since(asked) > 8*time.Second {
		t.Errorf("cancelled run: %s %q after %s; want cancelled with the reason, at once", r.Conclusion, r.Error, time.Since(asked))
	}
	if code, res := post("/api/v1/runs/"+first+"/cancel", ""); code != http.StatusConflict || !strings.Contains(res["error"].(string), "already completed") {
		t.Errorf("cancel of a finished run: %d %v, want 409", code, res)
	}

	// Rerun: a new run of the same commit, to success; the original stays as it ended.
	code, res = post("/api/v1/runs/"+first+"/rerun", "")
	again, _ := res["run_id"].(string)
	if code != http.StatusCreated || again == "" || again == first || res["rerun_of"] != first || res["status"] != store.RunQueued || res["sha"] != head {
		t.Fatalf("rerun: %d %v, want 201 with a new queued run of %s at %s", code, res, first, head)
	}
	waitUntil(t, "the re-run to finish", func() bool { return run(again).Status == store.RunCompleted })
	if r := run(again); r.Conclusion != "success" || r.SHA != head || r.Routine != "long" || r.RerunOf != first || sb.count() < 2 {
		t.Errorf("re-run: %s at %s of %q after %d agent runs; want success at %s, a re-run of %s", r.Conclusion, r.SHA, r.RerunOf, sb.count(), head, first)
	}
	if r := run(first); r.Conclusion != "cancelled" || !strings.Contains(r.Error, "wrong branch") {
		t.Errorf("the original after its re-run: %s %q, want it cancelled as it was", r.Conclusion, r.Error)
	}
	if got := seen.of(first); len(got) < 1 || slices.Contains(got, "success") {
		t.Errorf("the original's check run concluded %q, want only cancelled", got)
	}
	if got := seen.of(again); len(got) != 1 || got[0] != "success" {
		t.Errorf("the re-run's check run concluded %q, want success", got)
	}

	for _, path := range []string{"/api/v1/runs/r-none/cancel", "/api/v1/runs/r-none/rerun"} {
		if code, res := post(path, ""); code != http.StatusNotFound {
			t.Errorf("POST %s: %d %v, want 404", path, code, res)
		}
	}
	if code, res := post("/api/v1/runs/"+first+"/cancel", `{"why":"x"}`); code != http.StatusBadRequest {
		t.Errorf("cancel with an unknown field: %d %v, want 400", code, res)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
