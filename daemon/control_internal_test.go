package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// A run cancelled while another daemon holds it is that daemon's to conclude; when it never
// does (it died holding the lease), this daemon concludes the run cancelled once the lease
// is surely over, check run included, so no run stays "running" for good.
func TestCancelConcludesARunItsHolderAbandoned(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	p := newFakePipeline(t, quickRoutine)
	// The run as another daemon's intake made it, its job leased by that daemon ("ghost"),
	// which then dies. The delivery is this run's: this daemon's intake finds both made.
	recordDispatch(t, st, "ghosted", "quick")
	id := RunID("ghosted", "quick")
	ctx := t.Context()
	if _, _, err := st.CreateRun(ctx, store.Run{ID: id, Key: id, Repo: "acme/app", Routine: "quick", DeliveryID: "ghosted", EventKind: EventDispatch}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Enqueue(ctx, store.Job{Kind: KindRun, Key: KindRun + "/" + id, RunID: id}); err != nil {
		t.Fatal(err)
	}
	if jobs, err := st.Lease(ctx, "ghost", []string{KindRun}, 1, time.Hour); err != nil || len(jobs) != 1 {
		t.Fatalf("lease as the other daemon: %v %v", jobs, err)
	}
	if err := st.UpdateRun(ctx, store.Run{ID: id, Status: store.RunRunning, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	d, _, _ := startDaemon(t, st, p, "here", nil)

	res, err := d.Cancel(ctx, id, "no longer needed")
	if err != nil || res.CancelledJobs != 1 || res.Status != store.RunRunning {
		t.Fatalf("cancel: %+v %v; want one job cancelled and the run still running (its holder concludes it)", res, err)
	}
	completedRuns(t, st) // (waitFor reports progress from this store)
	waitFor(t, "the abandoned cancelled run to be concluded", 20*time.Second, func() bool {
		r, _ := st.GetRun(ctx, id)
		return r.Status == store.RunCompleted
	})
	r, _ := st.GetRun(ctx, id)
	if r.Conclusion != "cancelled" || !strings.Contains(r.Error, "no longer needed") {
		t.Errorf("run %s/%s %q, want cancelled with the reason", r.Status, r.Conclusion, r.Error)
	}
	if got := p.reasons(id); len(got) != 1 || !strings.Contains(got[0], "no longer needed") {
		t.Errorf("check run concluded with %q, want once with the reason", got)
	}
	if p.calls(id) != 0 {
		t.Errorf("the cancelled run was run %d times here", p.calls(id))
	}
}

// A job named in a cancel request is an instance of one of the plan's agents: the agent's
// name, with a fan-out key or a replica number.
func TestPlanHasJob(t *testing.T) {
	p := []byte(`{"nodes":[{"agent":"review"},{"agent":"fix"},{"agent":"lead","orchestrate":{"max_agents":5}}]}`)
	for job, want := range map[string]bool{"review": true, "review[a.go]": true, "review#2": true, "review[b]#3": true,
		"fix": true, "reviews": false, "rev": false, "": false, "other": false,
		// An orchestrator's later attempts and its workflow's jobs; not for an ordinary agent.
		"lead~2": true, "lead/edit[svc-a]": true, "lead/": false, "review/x": false, "fix~2": false} {
		if got := planHasJob(p, job); got != want {
			t.Errorf("planHasJob(%q) = %v, want %v", job, got, want)
		}
	}
	if planHasJob([]byte("not json"), "review") {
		t.Error("a plan that does not parse has jobs")
	}
}
