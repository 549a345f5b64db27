package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strings"
	"time"

	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
)

func (d *Daemon) runLoop(ctx, work context.Context) {
	for ctx.Err() == nil {
		free := d.o.Workers - int(d.running.Load())
		if free <= 0 {
			d.sleep(ctx, nil)
			continue
		}
		jobs, err := d.o.Store.Lease(ctx, d.o.Owner, []string{KindRun}, free, d.o.LeaseTTL)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("lease run jobs", "err", err)
			}
			d.sleep(ctx, nil)
			continue
		}
		for _, j := range jobs {
			jctx, cancel := context.WithCancelCause(work)
			a, prev := d.hold(j.ID, cancel)
			d.running.Add(1)
			d.runWG.Add(1)
			go func() {
				defer d.runWG.Done()
				defer d.running.Add(-1)
				defer d.release(j.ID, a)
				defer cancel(nil)
				waitPrevious(prev)
				d.runJob(jctx, j)
			}()
		}
		if len(jobs) == 0 {
			d.sleep(ctx, d.kickRuns)
		}
	}
}

// runJob runs one run job: wait for the concurrency group and the repository's limit, run,
// record. How the run's context ended decides what happens to the job: a shutdown gives it
// back to the queue, a lost lease drops the result (another worker owns the job now), a
// cancellation concludes the run cancelled.
func (d *Daemon) runJob(ctx context.Context, j store.Job) {
	log := d.log.With("job", j.ID, "run_id", j.RunID)
	// Store writes after the run's context ended must still happen.
	bg := context.WithoutCancel(ctx)
	run, err := d.o.Store.GetRun(ctx, j.RunID)
	if err != nil {
		d.failJob(bg, log, j, fmt.Errorf("read run %s: %w", j.RunID, err), nil, nil)
		return
	}
	log = log.With("repo", run.Repo, "routine", run.Routine)
	if run.Status == store.RunCompleted {
		// A previous attempt finished the run and died before completing the job.
		_ = d.o.Store.Complete(bg, j.ID, d.o.Owner, nil)
		return
	}
	// A run whose group is held goes back to the queue before it is planned again: planning
	// reads the repository's config, and a waiting run is looked at every few seconds. (With
	// cancel-in-progress it is planned first: it may have to conclude the run it supersedes.)
	if run.ConcurrencyGroup != "" && !cancelsInProgress(run) {
		if got, _, err := d.o.Store.AcquireGroup(ctx, run.ConcurrencyGroup, run.ID); err == nil && !got {
			d.wait(bg, log, j, run, "its concurrency group "+run.ConcurrencyGroup)
			return
		}
	}
	ev, pr, err := d.replan(ctx, run)
	if err != nil {
		d.failJob(bg, log, j, err, ev, pr)
		return
	}
	if run.ConcurrencyGroup != "" {
		held, ok := d.acquireGroup(ctx, log, run, pr)
		if !ok {
			d.endEarly(bg, log, j, run, ctx, ev, pr)
			return
		}
		if !held {
			d.wait(bg, log, j, run, "its concurrency group "+run.ConcurrencyGroup)
			return
		}
	}
	if !d.repoSlot(ctx, log, run) {
		if ctx.Err() != nil {
			d.endEarly(bg, log, j, run, ctx, ev, pr)
			return
		}
		d.wait(bg, log, j, run, fmt.Sprintf("one of the %d runs of %s at a time to end", d.o.MaxPerRepo, run.Repo))
		return
	}

	started := d.o.Now()
	if err := d.o.Store.UpdateRun(bg, store.Run{ID: run.ID, Status: store.RunRunning, StartedAt: started}); err != nil {
		log.Warn("mark run running", "err", err)
	}
	log.Info("run started", "attempt", j.Attempts)
	res, err := d.o.Pipeline.Run(ctx, ev, pr, run.ID)
	cause := context.Cause(ctx)
	if cause == nil {
		// The heartbeat may not have told yet: a result is recorded only under a live lease,
		// or another attempt's record would be overwritten.
		cause = d.leaseCause(bg, j)
	}
	switch {
	case errors.Is(cause, errShutdown):
		d.requeue(bg, log, j, run)
		return
	case errors.Is(cause, errLeaseLost):
		log.Warn("lease lost during the run; its result is dropped")
		return
	}
	if err != nil {
		d.failJob(bg, log, j, err, ev, pr)
		return
	}
	upd := store.Run{ID: run.ID, Status: store.RunCompleted, Conclusion: string(res.Conclusion), FinishedAt: d.o.Now()}
	var ce *cancelledError
	if errors.As(cause, &ce) {
		upd.Conclusion = string(result.ConclusionCancelled)
	}
	var shown bool
	upd.Error, shown = runReason(res, result.Conclusion(upd.Conclusion), ce)
	if !shown {
		// The check run the engine concluded does not say why: say it.
		if err := d.o.Pipeline.Conclude(bg, ev, pr, run.ID, result.Conclusion(upd.Conclusion), reasonReport(res, upd.Error)); err != nil {
			log.Warn("report why the run ended", "err", err)
		}
	}
	if err := d.o.Store.UpdateRun(bg, upd); err != nil {
		log.Warn("record run result", "err", err)
	}
	d.metrics.runs.WithLabelValues(upd.Conclusion).Inc()
	if usd := meteredSpend(res); usd > 0 {
		d.metrics.spend.WithLabelValues(run.Repo, run.Routine).Add(usd)
	}
	summary, _ := json.Marshal(map[string]any{"conclusion": upd.Conclusion, "jobs": len(res.Jobs)})
	if ce == nil {
		if err := d.o.Store.Complete(bg, j.ID, d.o.Owner, summary); err != nil {
			log.Warn("complete run job", "err", err)
		}
	}
	log.Info("run finished", "conclusion", upd.Conclusion, "took", time.Since(started).Round(time.Millisecond))
}

// replan rebuilds the run's event and plan from its delivery.
func (d *Daemon) replan(ctx context.Context, run store.Run) (*event.Event, *plan.Run, error) {
	del, err := d.o.Store.GetDelivery(ctx, run.DeliveryID)
	if err != nil {
		return nil, nil, fmt.Errorf("read delivery %s of run %s: %w", run.DeliveryID, run.ID, err)
	}
	pin := ""
	if run.RerunOf != "" {
		pin = run.SHA
	}
	ev, err := d.eventAt(ctx, del, pin)
	if err != nil {
		return nil, nil, err
	}
	if ev == nil {
		return nil, nil, permanentError{fmt.Errorf("delivery %s starts no run", del.ID)}
	}
	p, err := d.o.Pipeline.Plan(ctx, ev, run.Routine)
	if p == nil || len(p.Runs) == 0 {
		if err == nil {
			err = fmt.Errorf("routine %s no longer matches delivery %s", run.Routine, del.ID)
		}
		return ev, nil, permanentError{fmt.Errorf("plan run %s: %w", run.ID, err)}
	}
	if pin != "" && p.Runs[0].SHA != pin {
		// A comment command plans at its pull request's head, which may have moved since.
		return p.Event, nil, permanentError{fmt.Errorf("run %s re-runs %s at %s, but its event now plans commit %s (the pull request moved on): dispatch or comment again to run the new commit",
			run.ID, run.RerunOf, short(pin), short(p.Runs[0].SHA))}
	}
	return p.Event, p.Runs[0], nil
}

// cancelsInProgress reads cancel-in-progress from the plan stored with the run.
func cancelsInProgress(run store.Run) bool {
	var p struct {
		Concurrency *plan.Concurrency `json:"concurrency"`
	}
	return json.Unmarshal(run.Plan, &p) == nil && p.Concurrency != nil && p.Concurrency.CancelInProgress
}

// acquireGroup tries to make run the holder of its concurrency group. With cancel-in-progress
// it cancels the holder and waits for it to stop, which takes at most the sandbox's stop
// grace. Otherwise held is false while another run holds the group, and the caller gives the
// job back to wait without a worker. ok is false when ctx ended.
func (d *Daemon) acquireGroup(ctx context.Context, log *slog.Logger, run store.Run, pr *plan.Run) (held, ok bool) {
	cancelIn := pr.Concurrency != nil && pr.Concurrency.CancelInProgress
	marked := false
	var cancelled string
	var cancelledAt time.Time
	for {
		got, holder, err := d.o.Store.AcquireGroup(ctx, run.ConcurrencyGroup, run.ID)
		if err != nil {
			log.Warn("acquire concurrency group", "group", run.ConcurrencyGroup, "err", err)
		}
		if got {
			return true, true
		}
		if !cancelIn || err != nil || holder == "" {
			return false, true
		}
		if holder != cancelled {
			reason := fmt.Sprintf("superseded by run %s in concurrency group %s", run.ID, run.ConcurrencyGroup)
			if _, err := d.o.Store.CancelJobs(ctx, holder, reason); err != nil {
				log.Warn("cancel the run in progress", "holder", holder, "err", err)
			} else {
				log.Info("cancelling the run in progress", "holder", holder, "group", run.ConcurrencyGroup)
				cancelled, cancelledAt = holder, d.o.Now()
			}
		} else if d.o.Now().Sub(cancelledAt) > 2*d.o.LeaseTTL {
			// Nobody concluded the cancelled holder: its worker is gone.
			_ = d.o.Store.UpdateRun(ctx, store.Run{ID: holder, Status: store.RunCompleted,
				Conclusion: string(result.ConclusionCancelled), Error: "superseded by run " + run.ID, FinishedAt: d.o.Now()})
		}
		if !marked {
			_ = d.o.Store.UpdateRun(ctx, store.Run{ID: run.ID, Status: store.RunWaiting})
			log.Info("waiting for the cancelled run to stop", "group", run.ConcurrencyGroup, "holder", holder)
			marked = true
		}
		d.sleep(ctx, nil)
		if ctx.Err() != nil {
			return false, false
		}
	}
}

// repoSlot makes run hold one of its repository's MaxPerRepo slots. Each slot is a concurrency
// group of its own, so the limit holds across every daemon sharing the database, and a slot
// is freed with the run's groups when the run completes. False when other live runs hold them
// all (or the store failed, which is logged; the run then waits like any other).
func (d *Daemon) repoSlot(ctx context.Context, log *slog.Logger, run store.Run) bool {
	n := d.o.MaxPerRepo
	if n <= 0 {
		return true
	}
	// Starting at a slot that depends on the run makes a run given back to the queue (a
	// shutdown) find the slot it holds first rather than take a second one.
	first := int(crc32.ChecksumIEEE([]byte(run.ID)) % uint32(n))
	for i := range n {
		slot := fmt.Sprintf("repo-slot:%s#%d", run.Repo, (first+i)%n)
		got, _, err := d.o.Store.AcquireGroup(ctx, slot, run.ID)
		if err != nil {
			log.Warn("acquire a slot of the repository's run limit", "slot", slot, "err", err)
			return false
		}
		if got {
			return true
		}
	}
	return false
}

// wait gives a run job back to the queue for a little while without spending its attempt: the
// run waits for what it needs without holding a worker that runs of other groups and
// repositories can use meanwhile.
func (d *Daemon) wait(bg context.Context, log *slog.Logger, j store.Job, run store.Run, what string) {
	if run.Status != store.RunWaiting {
		_ = d.o.Store.UpdateRun(bg, store.Run{ID: run.ID, Status: store.RunWaiting})
		log.Info("run waits for " + what)
	}
	if err := d.o.Store.Requeue(bg, j.ID, d.o.Owner, d.waitRetry()); err != nil {
		log.Warn("give the waiting run back to the queue", "err", err)
	}
}

// waitRetry is how long a waiting run stays in the queue before it looks again.
func (d *Daemon) waitRetry() time.Duration { return 5 * d.o.Poll }

// endEarly handles a run job whose context ended before the run started.
func (d *Daemon) endEarly(bg context.Context, log *slog.Logger, j store.Job, run store.Run, ctx context.Context, ev *event.Event, pr *plan.Run) {
	cause := context.Cause(ctx)
	var ce *cancelledError
	switch {
	case errors.Is(cause, errShutdown):
		d.requeue(bg, log, j, run)
	case errors.As(cause, &ce):
		reason, _ := runReason(&result.Run{}, result.ConclusionCancelled, ce)
		// An earlier attempt may have opened the check run: close it with the reason.
		if ev != nil && pr != nil {
			if err := d.o.Pipeline.Conclude(bg, ev, pr, run.ID, result.ConclusionCancelled, reason); err != nil {
				log.Warn("report why the run ended", "err", err)
			}
		}
		_ = d.o.Store.UpdateRun(bg, store.Run{ID: run.ID, Status: store.RunCompleted,
			Conclusion: string(result.ConclusionCancelled), Error: reason, FinishedAt: d.o.Now()})
		d.metrics.runs.WithLabelValues(string(result.ConclusionCancelled)).Inc()
	}
}

// requeue gives a run interrupted by the shutdown back to the queue: its job available with
// its attempt unspent and, in the same transaction, the run queued again (store.Requeue), so
// the next daemon runs it from the start. The interrupted attempt reports and keeps nothing
// (see GitPipeline.Run): the run is not over.
func (d *Daemon) requeue(bg context.Context, log *slog.Logger, j store.Job, run store.Run) {
	if err := d.o.Store.Requeue(bg, j.ID, d.o.Owner, 0); err != nil {
		log.Warn("give the run back to the queue", "err", err)
		return
	}
	log.Info("run given back to the queue for the next start", "run_id", run.ID)
}

// interrupted reports whether ctx, a run attempt's, ended without ending the run: the daemon
// shuts down (the run goes back to the queue) or the lease was lost (another attempt owns
// the run). A cancellation on purpose ends the run.
func interrupted(ctx context.Context) bool {
	cause := context.Cause(ctx)
	return errors.Is(cause, errShutdown) || errors.Is(cause, errLeaseLost)
}

// failJob records a failed attempt; when no attempt remains (or the error is permanent) the
// run concludes as a failure with the reason, on its check run too.
func (d *Daemon) failJob(bg context.Context, log *slog.Logger, j store.Job, err error, ev *event.Event, pr *plan.Run) {
	retry := time.Duration(j.Attempts) * 10 * time.Second
	var perm permanentError
	if errors.As(err, &perm) {
		retry = -1
	}
	log.Warn("run failed", "err", err, "attempt", j.Attempts, "permanent", retry < 0)
	dead, ferr := d.o.Store.Fail(bg, j.ID, d.o.Owner, err.Error(), retry)
	if ferr != nil {
		log.Warn("record run failure", "err", ferr)
		return
	}
	if dead {
		j.LastError = err.Error()
		d.conclude(bg, j, ev, pr)
	}
}

// concludeDead concludes the run of a job that ran out of attempts.
func (d *Daemon) concludeDead(ctx context.Context, j store.Job) {
	if j.Kind != KindRun || j.RunID == "" {
		return
	}
	run, err := d.o.Store.GetRun(ctx, j.RunID)
	if err != nil || run.Status == store.RunCompleted {
		return
	}
	ev, pr, _ := d.replan(ctx, run)
	d.conclude(ctx, j, ev, pr)
}

func (d *Daemon) conclude(ctx context.Context, j store.Job, ev *event.Event, pr *plan.Run) {
	why := j.LastError
	if why == "" {
		why = fmt.Sprintf("no attempt left after %d", j.Attempts)
	}
	reason := "The runner gave up on this run: " + why
	// The check run first: once the run is marked completed nobody would conclude it again.
	if ev != nil && pr != nil {
		if err := d.o.Pipeline.Conclude(ctx, ev, pr, j.RunID, result.ConclusionFailure, reason); err != nil {
			d.log.Warn("report the run's end", "run_id", j.RunID, "err", err)
		}
	}
	if err := d.o.Store.UpdateRun(ctx, store.Run{ID: j.RunID, Status: store.RunCompleted,
		Conclusion: string(result.ConclusionFailure), Error: reason, FinishedAt: d.o.Now()}); err != nil {
		d.log.Warn("conclude run", "run_id", j.RunID, "err", err)
	}
	d.metrics.runs.WithLabelValues(string(result.ConclusionFailure)).Inc()
}

// leaseCause tells whether job j is still leased by this daemon: nil when it is (or the store
// cannot say), errLeaseLost or the cancellation otherwise.
func (d *Daemon) leaseCause(ctx context.Context, j store.Job) error {
	lost, err := d.o.Store.Heartbeat(ctx, []int64{j.ID}, d.o.Owner, d.o.LeaseTTL)
	if err != nil || len(lost) == 0 {
		return nil
	}
	if cur, err := d.o.Store.GetJob(ctx, j.ID); err == nil && cur.State == store.JobCancelled {
		return &cancelledError{reason: cur.LastError}
	}
	return errLeaseLost
}

// runReason says why a run that did not succeed ended, for its record and its check run; ""
// for a run that succeeded (or had nothing to do). A run that failed or was cancelled always
// gets a reason, even when nothing more precise than its conclusion is known.
// shown is false when the run's report (what the engine published) does not hold the reason.
func runReason(res *result.Run, c result.Conclusion, ce *cancelledError) (reason string, shown bool) {
	switch c {
	case result.ConclusionSuccess, result.ConclusionNeutral:
		return "", true
	}
	var why []string
	if ce != nil {
		r := ce.reason
		if r == "" {
			r = "the run was cancelled (no reason was given)"
		}
		why = append(why, r)
	}
	if res.Error != "" {
		why = append(why, res.Error)
	}
	const maxJobs = 5
	failed := 0
	for _, j := range res.Jobs {
		if j.Outcome == result.Success || j.Outcome == result.Skipped {
			continue
		}
		failed++
		if failed > maxJobs {
			continue
		}
		s := fmt.Sprintf("job %s: %s", j.ID, j.Outcome)
		if j.ExitCode != 0 {
			s += fmt.Sprintf(" (exit code %d)", j.ExitCode)
		}
		if j.Error != "" {
			s += ": " + j.Error
		}
		why = append(why, s)
	}
	if failed > maxJobs {
		why = append(why, fmt.Sprintf("and %d more jobs", failed-maxJobs))
	}
	for _, cf := range res.Conflicts {
		why = append(why, fmt.Sprintf("the changes of %s conflict with earlier ones (%s)", cf.Job, strings.Join(cf.Files, ", ")))
	}
	for _, a := range res.Agents {
		if a.Result == plan.ResultNoQuorum {
			why = append(why, fmt.Sprintf("agent %s: no quorum", a.Name))
		}
	}
	if len(why) == 0 {
		return fmt.Sprintf("the run concluded %s, and neither the engine nor any job gave a reason (see the run's logs)", c), false
	}
	return strings.Join(why, "; "), ce == nil
}

// reasonReport is the check-run report of a run whose own report does not say why it ended.
func reasonReport(res *result.Run, reason string) string {
	return fmt.Sprintf("> **Why:** %s\n\n%s", reason, res.Report)
}
