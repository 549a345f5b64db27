package daemon

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// shaPipeline is a fakePipeline whose default branch moves (head) and which records the
// commit each run ran at.
type shaPipeline struct {
	*fakePipeline
	mu   sync.Mutex
	head string
	ran  map[string]string // run id → commit
}

func (p *shaPipeline) Head(context.Context, event.Repo) (string, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.head, "main", nil
}

func (p *shaPipeline) Run(ctx context.Context, ev *event.Event, run *plan.Run, runID string) (*result.Run, error) {
	p.mu.Lock()
	p.ran[runID] = run.SHA
	p.mu.Unlock()
	return p.fakePipeline.Run(ctx, ev, run, runID)
}

func (p *shaPipeline) ranAt(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ran[id]
}

// A scheduled run names no commit in its delivery (it runs at the default branch's tip): its
// re-run runs the commit the original ran even after the branch moved on, as a new run of the
// same routine and delivery, and the original stays as it was.
func TestRerunOfAScheduledRunKeepsItsCommit(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	old, moved := strings.Repeat("1", 40), strings.Repeat("2", 40)
	p := &shaPipeline{fakePipeline: newFakePipeline(t, `name: nightly
on: {schedule: [{cron: "0 3 * * *"}]}
agents:
  a: {image: x, command: [x]}
`), head: old, ran: map[string]string{}}
	d, _, _ := startDaemon(t, st, p, "a", nil)
	body, _ := json.Marshal(envelope{Repo: "acme/app", Routine: "nightly", Cron: "0 3 * * *", At: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)})
	if _, err := st.RecordDelivery(t.Context(), store.Delivery{ID: "tick-1", Event: EventSchedule, Body: body}); err != nil {
		t.Fatal(err)
	}
	orig := RunID("tick-1", "nightly")
	done := func(id string) bool {
		r, err := st.GetRun(t.Context(), id)
		return err == nil && r.Status == store.RunCompleted
	}
	waitFor(t, "the scheduled run", 20*time.Second, func() bool { return done(orig) })
	p.mu.Lock()
	p.head = moved
	p.mu.Unlock()

	res, err := d.Rerun(t.Context(), orig)
	if err != nil {
		t.Fatal(err)
	}
	if res.RunID == orig || res.RerunOf != orig || res.SHA != old || res.Routine != "nightly" {
		t.Fatalf("re-run = %+v, want a new run of %s at %s", res, orig, old)
	}
	waitFor(t, "the re-run", 20*time.Second, func() bool { return done(res.RunID) })
	if got := p.ranAt(res.RunID); got != old {
		t.Errorf("the re-run ran at %s, want the original's commit %s (the branch is at %s)", got, old, moved)
	}
	r, _ := st.GetRun(t.Context(), res.RunID)
	o, _ := st.GetRun(t.Context(), orig)
	if r.RerunOf != orig || r.DeliveryID != "tick-1" || r.Routine != "nightly" || r.SHA != old || r.Conclusion != "success" {
		t.Errorf("re-run record %+v", r)
	}
	if o.RerunOf != "" || o.Conclusion != "success" || p.calls(orig) != 1 {
		t.Errorf("the original %+v ran %d times, want it untouched after one run", o, p.calls(orig))
	}
}
