package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
	"github.com/agentrunner/agentrunner/workspace"
)

// blockingSandbox holds every agent until its context ends, as a real agent stopped by the
// drain would.
type blockingSandbox struct{ started chan struct{} }

func (s *blockingSandbox) Run(ctx context.Context, _ *runner.Task, _ io.Writer) (*runner.Exit, error) {
	s.started <- struct{}{}
	<-ctx.Done()
	now := time.Now()
	return &runner.Exit{Outcome: result.Cancelled, ExitCode: -1, Started: now, Finished: now}, nil
}

// endings records the conclusions reported to the check run.
type endings struct {
	mu   sync.Mutex
	seen []string
}

func (e *endings) Report(_ context.Context, u reporters.Update) error {
	if u.Kind == reporters.RunFinished {
		e.mu.Lock()
		e.seen = append(e.seen, string(u.Result.Conclusion))
		e.mu.Unlock()
	}
	return nil
}

func (e *endings) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.seen...)
}

// A drain that stops a running run gives it back to the queue whole: queued, its job
// available with its attempt unspent, no result of the interrupted attempt kept or reported
// (no "cancelled" job shown for a run that is not over). The next daemon runs it to success.
func TestDrainRequeuesARunningRunCleanly(t *testing.T) {
	repoDir, head := gittest.Repo(t, map[string]string{".agents/long.yaml": `name: long
on: {dispatch: {}}
agents:
  a: {image: x, command: [x]}
`})
	st := storetest.SQLite(t).Open(t)
	ends := &endings{}
	pipeline := func(sb runner.Sandbox) (*GitPipeline, *Repos) {
		repos, err := NewRepos([]Repo{{Name: "acme/app", URL: repoDir, DefaultBranch: "main"}})
		if err != nil {
			t.Fatal(err)
		}
		wsm, err := workspace.NewManager(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { wsm.Close() })
		return &GitPipeline{Workspaces: wsm, Sandbox: sb, Repos: repos, RunsDir: t.TempDir(), Files: st,
			Reporters: func(*reporters.RunInfo, string) reporters.Reporter { return ends }}, repos
	}
	body, _ := json.Marshal(envelope{Repo: "acme/app", Routine: "long", SHA: head, Branch: "main"})
	if _, err := st.RecordDelivery(t.Context(), store.Delivery{ID: "drained", Event: EventDispatch, Body: body}); err != nil {
		t.Fatal(err)
	}
	runID := RunID("drained", "long")

	blocking := &blockingSandbox{started: make(chan struct{}, 1)}
	pipe, repos := pipeline(blocking)
	_, stop, done := startDaemon(t, st, pipe, "first", func(o *Options) { o.Repos = repos; o.ShutdownGrace = 200 * time.Millisecond })
	select {
	case <-blocking.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the run's agent did not start")
	}
	if r, _ := st.GetRun(t.Context(), runID); r.Status != store.RunRunning {
		t.Fatalf("run is %s while its agent runs, want running", r.Status)
	}
	stop()
	<-done

	run, err := st.GetRun(t.Context(), runID)
	if err != nil {
		t.Fatal(err)
	}
	jobs, _ := st.ListJobs(t.Context(), store.JobFilter{RunID: runID})
	if run.Status != store.RunQueued || run.Conclusion != "" || len(jobs) != 1 || jobs[0].State != store.JobAvailable || jobs[0].Attempts != 0 {
		t.Fatalf("after the drain: run %s/%s, jobs %+v; want queued with its job available and no attempt spent", run.Status, run.Conclusion, jobs)
	}
	if b, err := st.RunFile(t.Context(), runID, "result.json"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the interrupted attempt's result is kept and served: %s", b)
	}
	if got := ends.all(); len(got) != 0 {
		t.Errorf("the interrupted attempt reported the run's end: %q", got)
	}

	// The next daemon runs it from the queue to success.
	pipe2, repos2 := pipeline(&taskRecorder{})
	startDaemon(t, st, pipe2, "second", func(o *Options) { o.Repos = repos2 })
	waitFor(t, "the requeued run to succeed", 30*time.Second, func() bool {
		r, _ := st.GetRun(t.Context(), runID)
		return r.Status == store.RunCompleted
	})
	run, _ = st.GetRun(t.Context(), runID)
	res, err := st.RunFile(t.Context(), runID, "result.json")
	if run.Conclusion != "success" || err != nil || strings.Contains(string(res), `"cancelled"`) {
		t.Errorf("rerun: %s/%s, result %s (%v); want success with no cancelled job", run.Status, run.Conclusion, res, err)
	}
	if got := ends.all(); len(got) != 1 || got[0] != "success" {
		t.Errorf("reported ends %q, want one success", got)
	}
}
