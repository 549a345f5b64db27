package daemon

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/store/storetest"
)

// The daemon sweeps leftovers at its start, then again and again while it runs, each later
// sweep marked periodic (what may go while runs go on is the sweep's to narrow down).
func TestLeftoversAreSweptAtStartAndPeriodically(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	var mu sync.Mutex
	var calls []bool
	startDaemon(t, st, newFakePipeline(t, quickRoutine), "one", func(o *Options) {
		o.ReapEvery = 50 * time.Millisecond
		o.Reap = func(_ context.Context, p ReapPolicy) error {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, p.Periodic)
			return nil
		}
	})
	waitFor(t, "three sweeps", 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) >= 3 })
	mu.Lock()
	defer mu.Unlock()
	if calls[0] || !calls[1] || !calls[2] {
		t.Errorf("periodic flags %v: want the first (the start's) false, the later true", calls)
	}
}
