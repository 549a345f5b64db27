package daemon

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentrunner/agentrunner/store"
)

// Job kinds the daemon adds to the store's queue (intake jobs are store.KindIntake).
const (
	// KindRun runs one run; its RunID names it.
	KindRun = "run"
)

// Errors the daemon returns to callers that map them to HTTP statuses.
var (
	// ErrDraining: the daemon is shutting down and accepts nothing new (503).
	ErrDraining = errors.New("the runner is shutting down; retry later")
)

// Causes of a run's cancellation, told apart after the engine returns.
var (
	errShutdown  = errors.New("the runner is shutting down")
	errLeaseLost = errors.New("the lease of this job was lost (rescued by another worker)")
)

// cancelledError is the cause of a run cancelled on purpose (CancelJobs).
type cancelledError struct{ reason string }

func (e *cancelledError) Error() string { return "cancelled: " + e.reason }

// Options configure a Daemon. Store, Pipeline and Repos are required.
type Options struct {
	Store    store.Store
	Pipeline Pipeline
	Repos    *Repos
	Logger   *slog.Logger
	// Owner names this daemon in leases. It must be unique among daemons sharing the database
	// and stable across restarts, so a restarted daemon takes back what it held at once.
	Owner string
	// Workers is how many runs this daemon runs at once (default 16); agents inside runs are
	// bounded by the pipeline's sandbox (--max-agents).
	Workers int
	// IntakeWorkers plan deliveries at once (default 4).
	IntakeWorkers int
	// RunAttempts is how many times a run is tried when its daemon dies or its infrastructure
	// fails (default 3); then it concludes as a failure with the reason.
	RunAttempts int
	// MaxPerRepo bounds the runs of one repository under way at once, across every daemon
	// sharing the database (0: no limit). Runs beyond it wait in the queue, not in a worker.
	MaxPerRepo int
	// LeaseTTL is how long a lease lives without a heartbeat (default 30s).
	LeaseTTL time.Duration
	// Poll is how often idle workers look for jobs (default 200ms).
	Poll time.Duration
	// ShutdownGrace is how long running agents may finish after shutdown starts (default 30s).
	ShutdownGrace time.Duration
	// Reap removes the leftovers of earlier runs the policy gives up (containers, networks,
	// workspaces); called at start, and every ReapEvery after with ReapPolicy.Periodic set
	// (10m; negative: never), for what may go while runs go on (a finished run's pods).
	Reap      func(ctx context.Context, p ReapPolicy) error
	ReapEvery time.Duration
	// NoSchedules turns the scheduler off.
	NoSchedules bool
	// ScheduleTick is how often schedules are checked (default 1s).
	ScheduleTick time.Duration
	// Now is the clock (tests).
	Now func() time.Time
}

// Daemon runs deliveries from the store's queue.
type Daemon struct {
	o       Options
	log     *slog.Logger
	metrics *Metrics
	sched   *scheduler
	hooks   hookSecrets
	configs defaultConfigs // routines at each repository's default branch (routines.go)

	draining atomic.Bool
	kick     chan struct{} // wakes intake workers
	kickRuns chan struct{} // wakes run workers
	started  time.Time

	mu      sync.Mutex
	held    map[int64]*attempt
	cancels map[string]pendingCancel // by run id (see Cancel)
	runWG   sync.WaitGroup
	running atomic.Int64
}

// New checks o and makes a daemon; Run starts it.
func New(o Options) (*Daemon, error) {
	if o.Store == nil || o.Pipeline == nil || o.Repos == nil {
		return nil, errors.New("daemon: Store, Pipeline and Repos are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Owner == "" {
		host, _ := os.Hostname()
		o.Owner = host + "-" + randomHex(4)
	}
	if o.Workers <= 0 {
		o.Workers = 16
	}
	if o.IntakeWorkers <= 0 {
		o.IntakeWorkers = 4
	}
	if o.RunAttempts <= 0 {
		o.RunAttempts = store.DefaultMaxAttempts
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 200 * time.Millisecond
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 30 * time.Second
	}
	if o.ReapEvery == 0 {
		o.ReapEvery = 10 * time.Minute
	}
	if o.ScheduleTick <= 0 {
		o.ScheduleTick = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	d := &Daemon{
		o:        o,
		log:      o.Logger.With("owner", o.Owner),
		kick:     make(chan struct{}, 1),
		kickRuns: make(chan struct{}, 1),
		held:     map[int64]*attempt{},
		cancels:  map[string]pendingCancel{},
	}
	d.metrics = newMetrics(d)
	d.sched = newScheduler(d)
	return d, nil
}

// Metrics returns the daemon's Prometheus collectors, for /metrics.
func (d *Daemon) Metrics() *Metrics { return d.metrics }

// Draining reports whether shutdown has started (webhooks then answer 503).
func (d *Daemon) Draining() bool { return d.draining.Load() }

// Owner is the name this daemon leases jobs under.
func (d *Daemon) Owner() string { return d.o.Owner }

// wake makes idle intake workers look for jobs now.
func (d *Daemon) wake() { poke(d.kick) }

// wakeRuns makes idle run workers look for jobs now: a run queued by intake starts without
// waiting for the next poll.
func (d *Daemon) wakeRuns() { poke(d.kickRuns) }

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// RecordDelivery is the queue the GitHub webhook handler hands deliveries to: the store's
// RecordDelivery, refused while draining, and waking the intake workers.
func (d *Daemon) RecordDelivery(ctx context.Context, del store.Delivery) (bool, error) {
	if d.Draining() {
		return false, ErrDraining
	}
	fresh, err := d.o.Store.RecordDelivery(ctx, del)
	if err != nil {
		return false, err
	}
	d.metrics.deliveries.WithLabelValues(del.Event, freshLabel(fresh)).Inc()
	if fresh {
		d.wake()
	}
	return fresh, nil
}

func freshLabel(fresh bool) string {
	if fresh {
		return "accepted"
	}
	return "duplicate"
}

// Run serves until ctx ends, then drains: intake stops at once, running runs get
// ShutdownGrace to finish, then they are cancelled and given back to the queue.
func (d *Daemon) Run(ctx context.Context) error {
	d.started = d.o.Now()
	if err := d.recover(ctx); err != nil {
		return err
	}
	// Runs and heartbeats outlive ctx: they end when the drain says so.
	work, stopWork := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopWork(errShutdown)
	hbCtx, stopHB := context.WithCancel(context.WithoutCancel(ctx))
	var loops sync.WaitGroup
	spawn := func(f func()) {
		loops.Add(1)
		go func() { defer loops.Done(); f() }()
	}
	var hbDone sync.WaitGroup
	hbDone.Add(1)
	go func() { defer hbDone.Done(); d.heartbeatLoop(hbCtx) }()
	spawn(func() { d.intakeLoop(ctx) })
	spawn(func() { d.runLoop(ctx, work) })
	spawn(func() { d.rescueLoop(ctx) })
	if d.o.Reap != nil && d.o.ReapEvery > 0 {
		spawn(func() { d.reapLoop(ctx) })
	}
	if !d.o.NoSchedules {
		spawn(func() { d.sched.loop(ctx) })
	}
	d.log.Info("runner daemon started", "workers", d.o.Workers, "lease_ttl", d.o.LeaseTTL)
	<-ctx.Done()
	d.draining.Store(true)
	d.log.Info("shutting down: intake stopped, waiting for running runs", "running", d.running.Load(), "grace", d.o.ShutdownGrace)
	loops.Wait()
	done := make(chan struct{})
	go func() { d.runWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d.o.ShutdownGrace):
		d.log.Warn("shutdown grace is over: cancelling running runs and giving them back to the queue", "running", d.running.Load())
		stopWork(errShutdown)
		<-done
	}
	stopHB()
	hbDone.Wait()
	d.log.Info("runner daemon stopped")
	return nil
}

// recover runs at start: leases a previous incarnation of this daemon held are ended (the
// attempt counts, so a job that crashes the daemon is not retried forever), expired leases are
// rescued, and the leftovers of runs nobody holds are reaped (see reapPolicy).
func (d *Daemon) recover(ctx context.Context) error {
	leased, err := d.o.Store.ListJobs(ctx, store.JobFilter{State: store.JobLeased, Limit: 100000})
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	for _, j := range leased {
		if j.LeaseOwner != d.o.Owner {
			continue
		}
		if j.Kind == store.KindIntake {
			// Planning a delivery is short and deterministic: a restart in the middle is not
			// the delivery's fault, so it costs no attempt (a delivery is never dropped because
			// the daemon was killed three times while it waited).
			if err := d.o.Store.Requeue(ctx, j.ID, d.o.Owner, 0); err != nil && !errors.Is(err, store.ErrLeaseLost) {
				return fmt.Errorf("recover job %d: %w", j.ID, err)
			}
			continue
		}
		dead, err := d.o.Store.Fail(ctx, j.ID, d.o.Owner, fmt.Sprintf("the runner %s restarted during attempt %d", d.o.Owner, j.Attempts), 0)
		if err != nil && !errors.Is(err, store.ErrLeaseLost) {
			return fmt.Errorf("recover job %d: %w", j.ID, err)
		}
		d.log.Info("took back a job held before the restart", "job", j.ID, "kind", j.Kind, "run_id", j.RunID, "dead", dead)
		if dead {
			j.LastError = fmt.Sprintf("the runner restarted during each of %d attempts", j.Attempts)
			d.concludeDead(ctx, j)
		}
	}
	d.rescue(ctx)
	if d.o.Reap != nil {
		p, err := d.reapPolicy(ctx)
		if err != nil {
			return fmt.Errorf("recover: %w", err)
		}
		if err := d.o.Reap(ctx, p); err != nil {
			d.log.Warn("reap leftovers", "err", err)
		}
	}
	return nil
}

func (d *Daemon) rescueLoop(ctx context.Context) {
	t := time.NewTicker(d.o.LeaseTTL / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Our own leases first: on a machine so loaded that a heartbeat came late, the
			// jobs this daemon is still working on must not count as abandoned — rescuing
			// them would make it lease them again and stop its own attempts.
			d.extendLeases(ctx)
			d.rescue(ctx)
			d.concludeAbandonedCancels(ctx)
		}
	}
}

// rescue makes expired leases available again, and concludes the runs of jobs out of attempts.
func (d *Daemon) rescue(ctx context.Context) {
	jobs, err := d.o.Store.RescueExpired(ctx, d.o.Now())
	if err != nil {
		d.log.Warn("rescue expired leases", "err", err)
		return
	}
	for _, j := range jobs {
		d.log.Warn("rescued a job whose lease expired", "job", j.ID, "kind", j.Kind, "run_id", j.RunID, "state", j.State, "reason", j.LastError)
		if j.State == store.JobDead {
			d.concludeDead(ctx, j)
		} else {
			d.wake()
			d.wakeRuns()
		}
	}
}

// heartbeatLoop extends the leases of held jobs and stops the ones lost or cancelled.
func (d *Daemon) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(d.o.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.extendLeases(ctx)
	}
}

// extendLeases heartbeats the leases of the jobs this daemon holds and stops the attempts of
// those it lost or that were cancelled.
func (d *Daemon) extendLeases(ctx context.Context) {
	d.mu.Lock()
	ids := make([]int64, 0, len(d.held))
	for id := range d.held {
		ids = append(ids, id)
	}
	d.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	lost, err := d.o.Store.Heartbeat(ctx, ids, d.o.Owner, d.o.LeaseTTL)
	if err != nil {
		d.log.Warn("heartbeat", "err", err)
		return
	}
	for _, id := range lost {
		var cause error = errLeaseLost
		if j, err := d.o.Store.GetJob(ctx, id); err == nil && j.State == store.JobCancelled {
			cause = &cancelledError{reason: j.LastError}
		}
		d.mu.Lock()
		a := d.held[id]
		d.mu.Unlock()
		if a != nil {
			d.log.Info("stopping a job", "job", id, "why", cause)
			a.cancel(cause)
		}
	}
}

// attempt is one lease of a job this daemon is working on.
type attempt struct {
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the attempt's goroutine has returned
}

// hold records a new attempt of job id and returns the one it replaces, if any. Leases are
// fenced by owner only: when a lease expires while its attempt is still under way (a
// heartbeat that did not get through in time) and this same daemon leases the job again, the
// store sees one lease but two attempts exist. The old one is stopped as a lost lease, and the
// new one must wait for it to end before it touches the run (its workspaces, run directory,
// check run and record are the same).
func (d *Daemon) hold(id int64, cancel context.CancelCauseFunc) (a, prev *attempt) {
	a = &attempt{cancel: cancel, done: make(chan struct{})}
	d.mu.Lock()
	prev = d.held[id]
	d.held[id] = a
	d.mu.Unlock()
	if prev != nil {
		d.log.Warn("leased a job again while its previous attempt was still under way: stopping that attempt", "job", id)
		prev.cancel(errLeaseLost)
	}
	return a, prev
}

// release ends attempt a of job id; a newer attempt of the job stays held.
func (d *Daemon) release(id int64, a *attempt) {
	d.mu.Lock()
	if d.held[id] == a {
		delete(d.held, id)
	}
	d.mu.Unlock()
	close(a.done)
}

// waitPrevious waits for the attempt a new one replaced to end (see hold).
func waitPrevious(prev *attempt) {
	if prev != nil {
		<-prev.done
	}
}

// sleep waits for the poll interval, a kick, or the end of ctx.
func (d *Daemon) sleep(ctx context.Context, kick <-chan struct{}) {
	t := time.NewTimer(d.o.Poll)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-kick:
	}
}

// RunID is the id of the run a delivery starts for routine: the same on every attempt, so a
// retried intake finds its run and the GitHub reporters find their check run (external_id).
func RunID(deliveryID, routine string) string {
	sum := sha256.Sum256([]byte(deliveryID + "\x00" + routine))
	return "r" + hex.EncodeToString(sum[:10])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
