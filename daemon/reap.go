package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/store"
)

// ReapPolicy says which leftovers of earlier runs the daemon removes when it starts.
type ReapPolicy struct {
	// Busy reports a run whose job is leased right now, by this daemon or another sharing the
	// store: its workspaces and containers are in use.
	Busy func(runID string) bool
	// Remove decides for one Docker object (see Daemon.reapPolicy).
	Remove func(sandbox.Leftover) bool
	// Periodic: a sweep while this daemon runs, not at its start. Busy and Remove were read
	// before the sweep lists anything, so a run leased since looks idle: a periodic sweep
	// removes only what its run can never need again (a finished run's pods), never what a
	// run about to start creates.
	Periodic bool
}

// reapLoop sweeps every ReapEvery while the daemon runs.
func (d *Daemon) reapLoop(ctx context.Context) {
	t := time.NewTicker(d.o.ReapEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p, err := d.reapPolicy(ctx)
			if err == nil {
				p.Periodic = true
				err = d.o.Reap(ctx, p)
			}
			if err != nil && ctx.Err() == nil {
				d.log.Warn("periodic sweep of leftovers", "err", err)
			}
		}
	}
}

// reapPolicy is what this daemon may remove at start, after it took back its own leases and
// rescued the expired ones. Each object says who made it (sandbox.LabelOwner):
//
//   - this daemon: a leftover of an earlier incarnation, unless its run is busy;
//   - another daemon on the same store: only when that daemon holds no live lease at all (it
//     is gone) and nobody leases the run; a daemon on another store has leases we cannot see,
//     so its objects stay;
//   - a `runner exec`: only when it ran on this host and its process is gone (sandbox.ExecGone);
//   - nobody (made before objects were labelled with their owner): only when the run is one of
//     this store's runs and nobody leases it. A live daemon of any version holds the lease of
//     the runs whose containers it runs; a run this store does not know is a `runner exec`'s
//     or another store's, and whether its process lives cannot be told, so it stays.
func (d *Daemon) reapPolicy(ctx context.Context) (ReapPolicy, error) {
	storeID, err := d.o.Store.Identity(ctx)
	if err != nil {
		return ReapPolicy{}, err
	}
	leased, err := d.o.Store.ListJobs(ctx, store.JobFilter{State: store.JobLeased, Limit: 100000})
	if err != nil {
		return ReapPolicy{}, fmt.Errorf("list live leases: %w", err)
	}
	now := d.o.Now()
	busy, live := map[string]bool{}, map[string]bool{}
	for _, j := range leased {
		if !j.LeaseExpiresAt.After(now) {
			continue
		}
		live[j.LeaseOwner] = true
		if j.RunID != "" {
			busy[j.RunID] = true
		}
	}
	me := sandbox.DaemonOwner(d.o.Owner)
	var mu sync.Mutex
	known := map[string]bool{}
	ours := func(runID string) bool {
		mu.Lock()
		defer mu.Unlock()
		if v, ok := known[runID]; ok {
			return v
		}
		_, err := d.o.Store.GetRun(ctx, runID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			d.log.Warn("reap: read the run of an unlabelled object; keeping it", "run_id", runID, "err", err)
		}
		known[runID] = err == nil
		return err == nil
	}
	remove := func(l sandbox.Leftover) bool {
		if busy[l.RunID] {
			return false
		}
		if l.Owner == me {
			return true
		}
		if other, ok := sandbox.DaemonOf(l.Owner); ok {
			return l.Store == storeID && !live[other]
		}
		if l.Owner == "" {
			return l.RunID != "" && ours(l.RunID)
		}
		return sandbox.ExecGone(l.Owner)
	}
	return ReapPolicy{Busy: func(id string) bool { return busy[id] }, Remove: remove}, nil
}
