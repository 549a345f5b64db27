package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
)

// A cancelled job's agent is stopped like a cancelled run's (its container killed and
// removed); the job's outcome is "cancelled", and the run goes on. Its agent's result is then
// cancelled, which dependents see like a failure: those with the default `if:` (success())
// are skipped, `always()` ones run. The run concludes as its agents make it conclude.

// CancelJobResult is what a request to cancel one job did.
type CancelJobResult struct {
	RunID string `json:"run_id"`
	Job   string `json:"job"`
	// State is the job's when the request was recorded: running (its worker stops it: at once
	// on this daemon, within a few seconds on another), pending (it will not start), or
	// finished (it was cancelled before).
	State string `json:"state"`
	// Stopped is true when this daemon ran the job and stopped it at once.
	Stopped bool `json:"stopped"`
}

// jobCanceller is the part of a Pipeline that stops one running job of a run at once (the
// GitPipeline does; another pipeline's jobs are stopped through the store only).
type jobCanceller interface {
	CancelJob(runID, job, reason string) bool
}

// CancelJob cancels job (an instance id as in the run's result, e.g. "review" or
// "review[b]#2") of run runID with reason, and leaves the rest of the run going. The request
// is recorded in the store, where the worker holding the run reads it (whichever daemon it is
// on), stops the job's container and records the job cancelled; a job that has not started
// will not. A run or job that does not exist is a RequestError with 404; a finished run or
// job one with 409.
func (d *Daemon) CancelJob(ctx context.Context, runID, job, reason string) (*CancelJobResult, error) {
	run, err := d.o.Store.GetRun(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, reqErr(http.StatusNotFound, "no run %s", runID)
	}
	if err != nil {
		return nil, err
	}
	jobs, err := d.o.Store.RunJobs(ctx, runID)
	if err != nil {
		return nil, err
	}
	known := planHasJob(run.Plan, job)
	for _, j := range jobs {
		known = known || j.Job == job && j.State != store.RunJobPending
	}
	if !known {
		return nil, reqErr(http.StatusNotFound, "run %s has no job %q (see `runner runs %s` for its jobs)", runID, job, runID)
	}
	if run.Status == store.RunCompleted {
		return nil, reqErr(http.StatusConflict, "run %s is already completed (%s): its job %s has finished; `runner rerun %s` runs it again", runID, run.Conclusion, job, runID)
	}
	if reason == "" {
		reason = "the job was cancelled (no reason was given)"
	}
	rec, err := d.o.Store.CancelRunJob(ctx, runID, job, reason)
	if err != nil {
		return nil, err
	}
	if rec.State == store.RunJobFinished && !rec.Cancelled() {
		return nil, reqErr(http.StatusConflict, "job %s of run %s has already finished: nothing to cancel (`runner cancel %s` cancels the whole run)", job, runID, runID)
	}
	out := &CancelJobResult{RunID: runID, Job: job, State: rec.State}
	if c, ok := d.o.Pipeline.(jobCanceller); ok {
		out.Stopped = c.CancelJob(runID, job, rec.CancelReason)
	}
	d.log.Info("job cancelled on request", "run_id", runID, "job", job, "state", rec.State, "stopped_here", out.Stopped, "reason", reason)
	return out, nil
}

// planHasJob reports whether job names an instance of one of the agents of a stored plan: the
// agent's name, maybe followed by a fan-out key ("[…]") and a replica number ("#n"); or, for an
// orchestrating agent, a later attempt of it ("~n") or a job of the workflow it wrote ("/…").
func planHasJob(planJSON []byte, job string) bool {
	var p struct {
		Nodes []struct {
			Agent       string          `json:"agent"`
			Orchestrate json.RawMessage `json:"orchestrate"`
		} `json:"nodes"`
	}
	if json.Unmarshal(planJSON, &p) != nil {
		return false
	}
	for _, n := range p.Nodes {
		rest, ok := strings.CutPrefix(job, n.Agent)
		if ok && (rest == "" || rest[0] == '[' || rest[0] == '#') {
			return true
		}
		if ok && len(n.Orchestrate) > 0 && string(n.Orchestrate) != "null" && len(rest) > 1 && (rest[0] == '/' || rest[0] == '~') {
			return true
		}
	}
	return false
}

// jobCancelError is the cause of one job cancelled on request.
type jobCancelError struct{ reason string }

func (e *jobCancelError) Error() string { return "cancelled: " + e.reason }

// RunJobs is where a GitPipeline records its jobs' states and reads the requests to cancel
// one; the store implements it.
type RunJobs interface {
	SetRunJobState(ctx context.Context, runID, job, state string) error
	RunJobs(ctx context.Context, runID string) ([]store.RunJob, error)
}

// jobSandbox gives each job a context of its own, which CancelJob ends: the sandbox then
// stops the job's container as it does a cancelled run's.
type jobSandbox struct {
	s runner.Sandbox
	p *GitPipeline
}

func jobKey(runID, job string) string { return runID + "\x00" + job }

func (s *jobSandbox) Run(ctx context.Context, t *runner.Task, logs io.Writer) (*runner.Exit, error) {
	p, job := s.p, t.Instance.ID
	if p.Live != nil {
		// Everything this job logs, the daemon's own lines included, is followed live, byte
		// for byte as log.txt gets it (a late follower reads the start from there).
		live := p.Live.Open(t.RunID, job)
		defer live.Close()
		logs = io.MultiWriter(logs, live)
	}
	jctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// Registered before the store is read: a request recorded in between is seen by the
	// watcher's next look (watchJobCancels).
	key := jobKey(t.RunID, job)
	p.jobs.Store(key, cancel)
	defer p.jobs.Delete(key)
	if p.Jobs != nil {
		bg := context.WithoutCancel(ctx)
		if js, err := p.Jobs.RunJobs(ctx, t.RunID); err == nil {
			for _, j := range js {
				if j.Job == job && j.Cancelled() {
					cancel(&jobCancelError{reason: j.CancelReason})
				}
			}
		}
		if jctx.Err() == nil {
			p.setJobState(bg, t.RunID, job, store.RunJobRunning)
		}
		defer p.setJobState(bg, t.RunID, job, store.RunJobFinished)
	}
	start := time.Now()
	var exit *runner.Exit
	var err error
	if jctx.Err() == nil {
		exit, err = s.s.Run(jctx, t, logs)
	}
	var jc *jobCancelError
	if ctx.Err() == nil && errors.As(context.Cause(jctx), &jc) {
		if exit != nil && !exit.Started.IsZero() {
			start = exit.Started
		}
		fmt.Fprintf(logs, "agentrunner: this job was %s\n", jc.Error())
		// The outcome says cancelled; the error says why (the run's reason reads "job slow:
		// cancelled: <reason>").
		return &runner.Exit{Outcome: result.Cancelled, ExitCode: -1, Started: start, Finished: time.Now(), Error: jc.reason}, nil
	}
	if exit == nil && err == nil {
		// Never started: the run was cancelled before the job's turn came.
		return &runner.Exit{Outcome: result.Cancelled, ExitCode: -1, Started: start, Finished: time.Now()}, nil
	}
	return exit, err
}

func (p *GitPipeline) setJobState(ctx context.Context, runID, job, state string) {
	if err := p.Jobs.SetRunJobState(ctx, runID, job, state); err != nil {
		p.log().Warn("record a job's state", "run_id", runID, "job", job, "state", state, "err", err)
	}
}

// CancelJob stops job of run runID if it runs here, and reports whether it did.
func (p *GitPipeline) CancelJob(runID, job, reason string) bool {
	c, ok := p.jobs.Load(jobKey(runID, job))
	if ok {
		c.(context.CancelCauseFunc)(&jobCancelError{reason: reason})
	}
	return ok
}

// DefaultJobPoll is how often a running run looks for requests to cancel one of its jobs
// made on another daemon.
const DefaultJobPoll = 2 * time.Second

// watchJobCancels stops the jobs of run runID a cancel was asked for, on any daemon, until
// ctx ends: one indexed read of the run's job records per JobPoll.
func (p *GitPipeline) watchJobCancels(ctx context.Context, runID string) {
	every := p.JobPoll
	if every <= 0 {
		every = DefaultJobPoll
	}
	t := time.NewTicker(every)
	defer t.Stop()
	stopped := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		js, err := p.Jobs.RunJobs(ctx, runID)
		if err != nil {
			if ctx.Err() == nil {
				p.log().Warn("read the run's job cancel requests", "run_id", runID, "err", err)
			}
			continue
		}
		for _, j := range js {
			if j.Cancelled() && j.State == store.RunJobRunning && !stopped[j.Job] && p.CancelJob(runID, j.Job, j.CancelReason) {
				stopped[j.Job] = true
				p.log().Info("stopping a job cancelled on request", "run_id", runID, "job", j.Job)
			}
		}
	}
}
