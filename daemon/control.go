package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
)

// CancelResult is what a cancel request did.
type CancelResult struct {
	RunID string `json:"run_id"`
	// CancelledJobs counts the run's unfinished jobs it cancelled.
	CancelledJobs int `json:"cancelled_jobs"`
	// Status and Conclusion are the run's after the request: completed and cancelled when the
	// run was not running, or still running while its worker stops its agents (it concludes
	// the run cancelled within the lease's heartbeat, a few seconds).
	Status     string `json:"status"`
	Conclusion string `json:"conclusion,omitempty"`
}

// Cancel cancels the unfinished jobs of run runID, so the run concludes cancelled with
// reason. A run this daemon is running stops at once; one running on another daemon of the
// fleet stops at that daemon's next heartbeat (it sees its lease lost); a run that no worker
// holds (queued, waiting) is concluded here, check run included. Cancelling a completed run
// is a RequestError (409), a run that does not exist one with 404.
func (d *Daemon) Cancel(ctx context.Context, runID, reason string) (*CancelResult, error) {
	run, err := d.o.Store.GetRun(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, reqErr(http.StatusNotFound, "no run %s", runID)
	}
	if err != nil {
		return nil, err
	}
	if run.Status == store.RunCompleted {
		return nil, reqErr(http.StatusConflict, "run %s is already completed (%s): nothing to cancel; `runner rerun %s` runs it again", runID, run.Conclusion, runID)
	}
	jobs, err := d.o.Store.ListJobs(ctx, store.JobFilter{RunID: runID})
	if err != nil {
		return nil, err
	}
	live := false
	for _, j := range jobs {
		if j.State == store.JobLeased && j.LeaseExpiresAt.After(d.o.Now()) {
			live = true
		}
	}
	n, err := d.o.Store.CancelJobs(ctx, runID, reason)
	if err != nil {
		return nil, err
	}
	d.log.Info("run cancelled on request", "run_id", runID, "jobs", n, "reason", reason)
	// This daemon's own attempts stop now rather than at the next heartbeat.
	stopped := false
	d.mu.Lock()
	for _, j := range jobs {
		if a := d.held[j.ID]; a != nil {
			a.cancel(&cancelledError{reason: reason})
			stopped = true
		}
	}
	d.mu.Unlock()
	switch {
	case !live && !stopped:
		// No worker holds the run: nobody else would conclude it.
		d.concludeCancelled(ctx, run, reason)
	default:
		// The holder concludes the run; should it be gone without doing so (it died, or was
		// between two steps that give the job back), the rescue loop concludes it once its
		// lease is surely over.
		d.mu.Lock()
		d.cancels[runID] = pendingCancel{reason: reason, after: d.o.Now().Add(2 * d.o.LeaseTTL)}
		d.mu.Unlock()
	}
	out := &CancelResult{RunID: runID, CancelledJobs: n, Status: run.Status}
	if r, err := d.o.Store.GetRun(ctx, runID); err == nil {
		out.Status, out.Conclusion = r.Status, r.Conclusion
	}
	return out, nil
}

// pendingCancel is a run cancelled while a worker held it, to conclude after `after` if that
// worker did not.
type pendingCancel struct {
	reason string
	after  time.Time
}

// concludeAbandonedCancels concludes the runs cancelled while held whose holder did not
// conclude them in time (see Cancel).
func (d *Daemon) concludeAbandonedCancels(ctx context.Context) {
	now := d.o.Now()
	due := map[string]string{}
	d.mu.Lock()
	for id, c := range d.cancels {
		if now.After(c.after) {
			due[id] = c.reason
			delete(d.cancels, id)
		}
	}
	d.mu.Unlock()
	for id, reason := range due {
		if r, err := d.o.Store.GetRun(ctx, id); err == nil && r.Status != store.RunCompleted {
			d.log.Warn("concluding a cancelled run its worker did not conclude", "run_id", id)
			d.concludeCancelled(ctx, r, reason)
		}
	}
}

// concludeCancelled ends a run no worker holds as cancelled: its check run first (once the run
// is completed nobody would conclude it again), then its record.
func (d *Daemon) concludeCancelled(ctx context.Context, run store.Run, reason string) {
	why, _ := runReason(&result.Run{}, result.ConclusionCancelled, &cancelledError{reason: reason})
	if ev, pr, err := d.replan(ctx, run); err == nil {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := d.o.Pipeline.Conclude(cctx, ev, pr, run.ID, result.ConclusionCancelled, why); err != nil {
			d.log.Warn("report the cancelled run's end", "run_id", run.ID, "err", err)
		}
		cancel()
	}
	if err := d.o.Store.UpdateRun(ctx, store.Run{ID: run.ID, Status: store.RunCompleted,
		Conclusion: string(result.ConclusionCancelled), Error: why, FinishedAt: d.o.Now()}); err != nil && !errors.Is(err, store.ErrIllegalTransition) {
		d.log.Warn("conclude the cancelled run", "run_id", run.ID, "err", err)
		return
	}
	d.metrics.runs.WithLabelValues(string(result.ConclusionCancelled)).Inc()
}

// RerunResult is what a rerun request did.
type RerunResult struct {
	// RunID is the new run's.
	RunID string `json:"run_id"`
	// RerunOf is the run it re-runs, which stays as it was.
	RerunOf string `json:"rerun_of"`
	Repo    string `json:"repo"`
	Routine string `json:"routine"`
	SHA     string `json:"sha"`
	Status  string `json:"status"`
}

// Rerun runs a finished run again as a new run: the same delivery (so the same event and
// inputs), the same routine and the same commit, under a new run id recorded as a re-run of
// runID (store.Run.RerunOf); the original run and its files stay as they are. Like GitHub
// Actions, only a finished run is re-run: one that has not finished is a RequestError (409)
// saying to cancel it first; a run that does not exist one with 404.
func (d *Daemon) Rerun(ctx context.Context, runID string) (*RerunResult, error) {
	if d.Draining() {
		return nil, ErrDraining
	}
	orig, err := d.o.Store.GetRun(ctx, runID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, reqErr(http.StatusNotFound, "no run %s", runID)
	case err != nil:
		return nil, err
	case orig.Status != store.RunCompleted:
		return nil, reqErr(http.StatusConflict, "run %s is %s: only a finished run is run again (cancel it first: `runner cancel %s`)", runID, orig.Status, runID)
	}
	id := "r" + randomHex(10)
	run, _, err := d.o.Store.CreateRun(ctx, store.Run{ID: id, Key: id, Repo: orig.Repo, Routine: orig.Routine, SHA: orig.SHA,
		EventKind: orig.EventKind, DeliveryID: orig.DeliveryID, ConcurrencyGroup: orig.ConcurrencyGroup, Plan: orig.Plan, RerunOf: orig.ID})
	if err != nil {
		return nil, fmt.Errorf("re-run %s: %w", runID, err)
	}
	if _, _, err := d.o.Store.Enqueue(ctx, store.Job{Kind: KindRun, Key: KindRun + "/" + run.ID, RunID: run.ID, MaxAttempts: d.o.RunAttempts}); err != nil {
		// The run stays queued without a job; cancelling it concludes it.
		return nil, fmt.Errorf("re-run %s: queue run %s: %w", runID, run.ID, err)
	}
	d.wakeRuns()
	d.log.Info("run re-run on request", "run_id", run.ID, "rerun_of", runID, "sha", run.SHA)
	return &RerunResult{RunID: run.ID, RerunOf: runID, Repo: run.Repo, Routine: run.Routine, SHA: run.SHA, Status: run.Status}, nil
}
