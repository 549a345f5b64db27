package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/store"
)

// Delivery event names of the events the daemon records itself. GitHub's event names never
// contain a slash, so they cannot collide.
const (
	EventDispatch = "runner/dispatch"
	EventSchedule = "runner/schedule"
	EventWebhook  = "runner/webhook"
)

// envelope is the body of a delivery the daemon records itself: everything needed to rebuild
// the same event on every attempt.
type envelope struct {
	Repo    string            `json:"repo"`
	Routine string            `json:"routine"`
	SHA     string            `json:"sha,omitempty"`
	Branch  string            `json:"branch,omitempty"`
	Inputs  map[string]string `json:"inputs,omitempty"`
	Cron    string            `json:"cron,omitempty"`
	At      time.Time         `json:"at,omitzero"`
	Payload json.RawMessage   `json:"payload,omitempty"`
}

// permanentError marks an intake or run failure that a retry cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// eventOf rebuilds the event of a delivery; nil (and no error) for deliveries that start
// nothing (ping, installation).
func (d *Daemon) eventOf(ctx context.Context, del store.Delivery) (*event.Event, error) {
	return d.eventAt(ctx, del, "")
}

// eventAt is eventOf at commit sha when the delivery names none (a schedule tick, which
// otherwise runs at the default branch's tip): a re-run runs the commit its original ran.
func (d *Daemon) eventAt(ctx context.Context, del store.Delivery, sha string) (*event.Event, error) {
	switch del.Event {
	case EventDispatch, EventSchedule, EventWebhook:
		var env envelope
		if err := json.Unmarshal(del.Body, &env); err != nil {
			return nil, permanentError{fmt.Errorf("delivery %s: decode %s body: %w", del.ID, del.Event, err)}
		}
		repo, err := d.o.Repos.EventRepo(env.Repo)
		if err != nil {
			return nil, permanentError{fmt.Errorf("delivery %s: %w", del.ID, err)}
		}
		if env.SHA == "" && sha != "" {
			env.SHA = sha
			if env.Branch == "" {
				env.Branch = repo.DefaultBranch
			}
		}
		if env.SHA == "" {
			// A schedule tick is recorded without a commit: it runs at the default branch's
			// tip when it is taken from the queue.
			if env.SHA, env.Branch, err = d.o.Pipeline.Head(ctx, repo); err != nil {
				return nil, fmt.Errorf("delivery %s: %w", del.ID, err)
			}
		}
		if repo.DefaultBranch == "" {
			repo.DefaultBranch = env.Branch
		}
		var ev *event.Event
		switch del.Event {
		case EventDispatch:
			ev = event.Dispatched(repo, env.SHA, env.Branch, env.Routine, env.Inputs)
		case EventSchedule:
			ev = event.Scheduled(repo, env.SHA, env.Branch, env.Cron, env.At)
			ev.Routine = env.Routine
		default:
			if ev, err = event.FromWebhook(repo, env.SHA, env.Branch, env.Routine, env.Payload); err != nil {
				return nil, permanentError{err}
			}
		}
		ev.DeliveryID = del.ID
		return ev, nil
	}
	ev, err := event.FromGitHub(del.Event, del.ID, del.Body)
	if err != nil {
		return nil, permanentError{fmt.Errorf("delivery %s (%s): %w", del.ID, del.Event, err)}
	}
	// A comment names no commit: planning reads its pull request's head.
	if ev == nil || ev.Kind == event.KindPing || ev.Kind == event.KindInstallation || ev.SHA == "" && ev.Kind != event.KindIssueComment {
		return nil, nil
	}
	return ev, nil
}

func (d *Daemon) intakeLoop(ctx context.Context) {
	sem := make(chan struct{}, d.o.IntakeWorkers)
	for ctx.Err() == nil {
		free := cap(sem) - len(sem)
		if free == 0 {
			sem <- struct{}{} // wait for one to finish
			<-sem
			continue
		}
		jobs, err := d.o.Store.Lease(ctx, d.o.Owner, []string{store.KindIntake}, free, d.o.LeaseTTL)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("lease intake jobs", "err", err)
			}
			d.sleep(ctx, nil)
			continue
		}
		for _, j := range jobs {
			sem <- struct{}{}
			jctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
			a, prev := d.hold(j.ID, cancel)
			go func() {
				defer func() { <-sem }()
				defer d.release(j.ID, a)
				defer cancel(nil)
				waitPrevious(prev)
				d.intake(jctx, j)
			}()
		}
		if len(jobs) == 0 {
			d.sleep(ctx, d.kick)
		}
	}
	// Let the intake jobs in flight finish: they are short and their delivery is already safe.
	for range cap(sem) {
		sem <- struct{}{}
	}
}

// intake plans a delivery and creates its runs and run jobs. Everything it writes is keyed by
// the delivery, so a second attempt after a crash writes nothing new.
func (d *Daemon) intake(ctx context.Context, j store.Job) {
	log := d.log.With("job", j.ID, "delivery", j.DeliveryID)
	err := d.planDelivery(ctx, j)
	if err == nil {
		if err := d.o.Store.Complete(ctx, j.ID, d.o.Owner, nil); err != nil {
			log.Warn("complete intake job", "err", err)
		}
		return
	}
	retry := time.Duration(j.Attempts) * 5 * time.Second
	var perm permanentError
	if errors.As(err, &perm) {
		retry = -1
	}
	log.Warn("intake failed", "err", err, "permanent", retry < 0)
	if _, ferr := d.o.Store.Fail(context.WithoutCancel(ctx), j.ID, d.o.Owner, err.Error(), retry); ferr != nil {
		log.Warn("record intake failure", "err", ferr)
	}
}

func (d *Daemon) planDelivery(ctx context.Context, j store.Job) error {
	del, err := d.o.Store.GetDelivery(ctx, j.DeliveryID)
	if err != nil {
		return err
	}
	ev, err := d.eventOf(ctx, del)
	if err != nil || ev == nil {
		return err
	}
	if d.o.Repos.Learn(ev.Repo) || (ev.Kind == event.KindPush && ev.Branch != "" && ev.Branch == ev.Repo.DefaultBranch) {
		d.sched.refreshLater(ev.Repo.FullName())
	}
	p, perr := d.o.Pipeline.Plan(ctx, ev, ev.Routine)
	if p == nil {
		return permanentError{perr}
	}
	for _, r := range p.Runs {
		if err := d.createRun(ctx, del, p.Event, r); err != nil {
			return err
		}
	}
	if perr != nil {
		// The routines that planned run; the error names the ones that did not.
		return permanentError{perr}
	}
	return nil
}

func (d *Daemon) createRun(ctx context.Context, del store.Delivery, ev *event.Event, r *plan.Run) error {
	id := RunID(del.ID, r.Routine)
	planJSON, _ := json.Marshal(r)
	group := ""
	if r.Concurrency != nil && r.Concurrency.Group != "" {
		group = ev.Repo.FullName() + ":" + r.Concurrency.Group
	}
	run, created, err := d.o.Store.CreateRun(ctx, store.Run{
		ID: id, Key: id, Repo: ev.Repo.FullName(), Routine: r.Routine, SHA: r.SHA, EventKind: ev.Kind,
		DeliveryID: del.ID, ConcurrencyGroup: group, Plan: planJSON,
	})
	if err != nil {
		return fmt.Errorf("create run of %s for delivery %s: %w", r.Routine, del.ID, err)
	}
	if _, fresh, err := d.o.Store.Enqueue(ctx, store.Job{Kind: KindRun, Key: KindRun + "/" + run.ID, RunID: run.ID, MaxAttempts: d.o.RunAttempts}); err != nil {
		return fmt.Errorf("enqueue run %s: %w", run.ID, err)
	} else if created || fresh {
		d.wakeRuns()
		d.log.Info("run queued", "run_id", run.ID, "repo", run.Repo, "routine", run.Routine, "delivery", del.ID, "event", ev.Kind)
	}
	return nil
}

// DispatchResult is what a dispatch accepted.
type DispatchResult struct {
	DeliveryID string `json:"delivery_id"`
	RunID      string `json:"run_id"`
	Repo       string `json:"repo"`
	Routine    string `json:"routine"`
	SHA        string `json:"sha"`
	Branch     string `json:"branch"`
}

// RequestError is a caller's mistake, with the HTTP status that says which.
type RequestError struct {
	Status int
	Err    error
}

func (e *RequestError) Error() string { return e.Err.Error() }
func (e *RequestError) Unwrap() error { return e.Err }

// HTTPStatus is the status a server answers with.
func (e *RequestError) HTTPStatus() int { return e.Status }

func reqErr(status int, format string, args ...any) error {
	return &RequestError{Status: status, Err: fmt.Errorf(format, args...)}
}

// Dispatch runs routine of repo (owner/name) at the tip of its default branch with inputs.
// The inputs are checked against the routine's dispatch.inputs now (a RequestError with 422
// says what is wrong), then the dispatch is committed to the store and queued.
func (d *Daemon) Dispatch(ctx context.Context, repoName, routine string, inputs map[string]string) (*DispatchResult, error) {
	if d.Draining() {
		return nil, ErrDraining
	}
	repo, err := d.o.Repos.EventRepo(repoName)
	if err != nil {
		return nil, reqErr(400, "%v", err)
	}
	sha, branch, err := d.o.Pipeline.Head(ctx, repo)
	if err != nil {
		return nil, reqErr(404, "repository %s: %v", repoName, err)
	}
	repo.DefaultBranch = branch
	cfg, err := d.o.Pipeline.Config(ctx, repo, sha)
	if err != nil {
		return nil, reqErr(422, "%v", err)
	}
	d.hooks.learn(repoName, cfg)
	d.configs.remember(repoName, sha, branch, cfg, d.o.Now())
	if cfg.Routine(routine) == nil {
		return nil, reqErr(404, "repository %s has no routine %q at %s (%s)", repoName, routine, short(sha), branch)
	}
	ev := event.Dispatched(repo, sha, branch, routine, inputs)
	p, err := plan.Build(cfg, ev, plan.Options{Routine: routine})
	if err != nil {
		return nil, reqErr(422, "%v", err)
	}
	if len(p.Runs) == 0 {
		return nil, reqErr(422, "routine %s does not run on a dispatch", routine)
	}
	id := "dispatch-" + randomHex(12)
	body, _ := json.Marshal(envelope{Repo: repoName, Routine: routine, SHA: sha, Branch: branch, Inputs: inputs})
	if _, err := d.RecordDelivery(ctx, store.Delivery{ID: id, Event: EventDispatch, Body: body}); err != nil {
		return nil, err
	}
	return &DispatchResult{DeliveryID: id, RunID: RunID(id, routine), Repo: repoName, Routine: routine, SHA: sha, Branch: branch}, nil
}
