package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// fakePipeline plans real routines parsed from YAML and "runs" them without containers: a run
// of routine "block" lasts until its context ends or release is closed; others succeed at once.
type fakePipeline struct {
	routines []string // YAML sources
	sha      string

	mu   sync.Mutex
	runs map[string]int // run id → Run calls
	// inflight counts the Run calls of a run id under way; overlaps counts calls that started
	// while another of the same run was still under way (never correct).
	inflight map[string]int
	overlaps int
	// concluded holds the reasons Conclude reported (the check-run text), by run id.
	concluded map[string][]string
	ticks     map[string]int // schedule "at" → Run calls
	started   chan string
	release   chan struct{}
	plans     atomic.Int64 // Plan calls
}

func newFakePipeline(_ testing.TB, routines ...string) *fakePipeline {
	return &fakePipeline{routines: routines, sha: strings.Repeat("a", 40), runs: map[string]int{}, ticks: map[string]int{}, inflight: map[string]int{},
		concluded: map[string][]string{},
		started:   make(chan string, 10000), release: make(chan struct{})}
}

func (p *fakePipeline) Head(context.Context, event.Repo) (string, string, error) {
	return p.sha, "main", nil
}

func (p *fakePipeline) Config(context.Context, event.Repo, string) (*config.Config, error) {
	cfg := &config.Config{Dir: ".agents"}
	for i, src := range p.routines {
		r, errs := config.Parse(fmt.Sprintf(".agents/r%d.yaml", i), []byte(src))
		if len(errs) > 0 {
			return nil, errs
		}
		cfg.Routines = append(cfg.Routines, r)
	}
	return cfg, nil
}

func (p *fakePipeline) Plan(ctx context.Context, ev *event.Event, routine string) (*plan.Plan, error) {
	p.plans.Add(1)
	cfg, err := p.Config(ctx, ev.Repo, ev.SHA)
	if err != nil {
		return nil, err
	}
	return plan.Build(cfg, ev, plan.Options{Routine: routine})
}

func (p *fakePipeline) Run(ctx context.Context, ev *event.Event, run *plan.Run, runID string) (*result.Run, error) {
	p.mu.Lock()
	p.runs[runID]++
	p.inflight[runID]++
	if p.inflight[runID] > 1 {
		p.overlaps++
	}
	defer func() {
		p.mu.Lock()
		p.inflight[runID]--
		p.mu.Unlock()
	}()
	if at, ok := ev.Payload["at"].(string); ok && ev.Kind == event.KindSchedule {
		p.ticks[run.Routine+"@"+at]++
	}
	p.mu.Unlock()
	p.started <- runID
	res := &result.Run{ID: runID, Routine: run.Routine, Conclusion: result.ConclusionSuccess}
	if run.Routine == "mute-failure" {
		// A failure nothing explains: the daemon must still record why.
		res.Conclusion = result.ConclusionFailure
	}
	if run.Routine == "block" {
		select {
		case <-ctx.Done():
			res.Conclusion = result.ConclusionCancelled
		case <-p.release:
		}
	}
	return res, nil
}

func (p *fakePipeline) Conclude(_ context.Context, _ *event.Event, _ *plan.Run, runID string, _ result.Conclusion, reason string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.concluded[runID] = append(p.concluded[runID], reason)
	return nil
}

func (p *fakePipeline) reasons(runID string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.concluded[runID]...)
}

func (p *fakePipeline) calls(runID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runs[runID]
}

const quickRoutine = `name: quick
on: {dispatch: {}}
agents:
  a: {image: x, command: [x]}
`

const blockRoutine = `name: block
on: {dispatch: {}}
concurrency: {group: only-one, cancel-in-progress: true}
agents:
  a: {image: x, command: [x]}
`

func startDaemon(t *testing.T, st store.Store, p Pipeline, owner string, mod func(*Options)) (*Daemon, context.CancelFunc, <-chan struct{}) {
	t.Helper()
	repos, err := NewRepos([]Repo{{Name: "acme/app", URL: "file:///nonexistent", DefaultBranch: "main"}})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Store: st, Pipeline: p, Repos: repos, Owner: owner, LeaseTTL: 900 * time.Millisecond,
		Poll: 20 * time.Millisecond, ShutdownGrace: 5 * time.Second, NoSchedules: true, Workers: 32}
	if mod != nil {
		mod(&o)
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Run(ctx); err != nil {
			t.Errorf("daemon %s: %v", owner, err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("daemon %s did not stop", owner)
		}
	})
	return d, cancel, done
}

// recordDispatch queues a dispatch as the API would, without planning it first.
func recordDispatch(t *testing.T, st store.Store, id, routine string) {
	t.Helper()
	body, _ := json.Marshal(envelope{Repo: "acme/app", Routine: routine, SHA: strings.Repeat("a", 40), Branch: "main"})
	if fresh, err := st.RecordDelivery(t.Context(), store.Delivery{ID: id, Event: EventDispatch, Body: body}); err != nil || !fresh {
		t.Fatalf("record delivery %s: fresh=%v err=%v", id, fresh, err)
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			if lastStore == nil {
				t.Fatalf("timed out after %s waiting for %s", timeout, what)
			}
			t.Fatalf("timed out after %s waiting for %s (%d runs completed)", timeout, what, len(completedRuns(t, lastStore)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lastStore is the store waitFor reports progress from.
var lastStore store.Store

func completedRuns(t *testing.T, st store.Store) []store.Run {
	lastStore = st
	t.Helper()
	runs, err := st.ListRuns(context.Background(), store.RunFilter{Status: store.RunCompleted, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

var databases = []struct {
	name string
	db   storetest.NewDB
}{
	{"sqlite", storetest.SQLite},
	{"postgres", storetest.Postgres},
}

// Two daemons on one database run every queued job exactly once.
func TestTwoDaemonsRunEachJobOnce(t *testing.T) {
	for _, tc := range databases {
		t.Run(tc.name, func(t *testing.T) {
			const n = 500
			db := tc.db(t)
			st1, st2 := db.Open(t), db.Open(t)
			for i := range n {
				recordDispatch(t, st1, fmt.Sprintf("d-%d", i), "quick")
			}
			p := newFakePipeline(t, quickRoutine)
			// Exclusivity is what is tested here, not rescue (TestExpiredLeasesAreRescued): a
			// lease as short as the other tests' 900 ms can expire on a loaded CI machine, and a
			// rescued job legitimately runs again (at-least-once).
			longLeases := func(o *Options) { o.LeaseTTL = 10 * time.Second }
			startDaemon(t, st1, p, "one", longLeases)
			startDaemon(t, st2, p, "two", longLeases)
			waitFor(t, "500 completed runs", 240*time.Second, func() bool { return len(completedRuns(t, st1)) == n })
			for i := range n {
				id := RunID(fmt.Sprintf("d-%d", i), "quick")
				if c := p.calls(id); c != 1 {
					t.Errorf("run %s ran %d times, want 1", id, c)
				}
			}
			for _, r := range completedRuns(t, st1) {
				if r.Conclusion != "success" {
					t.Errorf("run %s concluded %q", r.ID, r.Conclusion)
				}
			}
			// A run is recorded completed just before its queue job is: give the last one a
			// moment to follow.
			var counts map[string]int
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				counts, _ = st1.CountJobs(context.Background())
				if counts[store.JobCompleted] == 2*n || time.Now().After(deadline) {
					break
				}
			}
			if counts[store.JobCompleted] != 2*n || counts[store.JobDead] != 0 {
				t.Errorf("jobs by state = %v, want %d completed (intake + run) and none dead", counts, 2*n)
			}
		})
	}
}

// A newer run in a cancel-in-progress group cancels the running one.
func TestCancelInProgressCancelsTheOlderRun(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	p := newFakePipeline(t, blockRoutine)
	startDaemon(t, st, p, "one", nil)
	recordDispatch(t, st, "first", "block")
	first, second := RunID("first", "block"), RunID("second", "block")
	if got := <-p.started; got != first {
		t.Fatalf("started %s, want %s", got, first)
	}
	recordDispatch(t, st, "second", "block")
	waitFor(t, "the first run to conclude", 20*time.Second, func() bool {
		r, err := st.GetRun(context.Background(), first)
		return err == nil && r.Status == store.RunCompleted
	})
	r, _ := st.GetRun(context.Background(), first)
	if r.Conclusion != "cancelled" || !strings.Contains(r.Error, second) {
		t.Errorf("first run: conclusion %q error %q, want cancelled, superseded by %s", r.Conclusion, r.Error, second)
	}
	if why := p.reasons(first); len(why) == 0 || !strings.Contains(why[len(why)-1], second) {
		t.Errorf("check-run text of the cancelled run = %q, want it to say it was superseded by %s", why, second)
	}
	if got := <-p.started; got != second {
		t.Fatalf("started %s, want %s", got, second)
	}
	close(p.release)
	waitFor(t, "the second run to succeed", 20*time.Second, func() bool {
		r, err := st.GetRun(context.Background(), second)
		return err == nil && r.Status == store.RunCompleted && r.Conclusion == "success"
	})
}

// holdsBack checks that no run starts for a while (one is waiting while why), then lets the
// blocked run go and waits for all total runs to succeed.
func holdsBack(t *testing.T, p *fakePipeline, st store.Store, why string, total int) {
	t.Helper()
	select {
	case id := <-p.started:
		t.Fatalf("run %s started while %s", id, why)
	case <-time.After(500 * time.Millisecond):
	}
	close(p.release)
	waitFor(t, fmt.Sprintf("%d runs to succeed", total), 20*time.Second, func() bool {
		runs := completedRuns(t, st)
		for _, r := range runs {
			if r.Conclusion != "success" {
				t.Fatalf("run %s concluded %s", r.ID, r.Conclusion)
			}
		}
		return len(runs) == total
	})
}

// A run without cancel-in-progress waits for its group, in the queue rather than in a worker:
// with two workers, one run holding the group and one waiting, other runs still go.
func TestConcurrencyGroupWaitsWithoutAWorker(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	p := newFakePipeline(t, strings.Replace(blockRoutine, "cancel-in-progress: true", "cancel-in-progress: false", 1), quickRoutine)
	// Leases outlive CI's pauses: a rescued lease would legitimately start the held run again.
	startDaemon(t, st, p, "one", func(o *Options) { o.Workers = 2; o.LeaseTTL = 10 * time.Second })
	recordDispatch(t, st, "first", "block")
	<-p.started
	recordDispatch(t, st, "second", "block")
	second := RunID("second", "block")
	waitFor(t, "the second run to wait", 10*time.Second, func() bool {
		r, err := st.GetRun(context.Background(), second)
		return err == nil && r.Status == store.RunWaiting
	})
	for _, id := range []string{"third", "fourth", "fifth"} {
		recordDispatch(t, st, id, "quick")
		select {
		case got := <-p.started:
			if got != RunID(id, "quick") {
				t.Fatalf("started %s while the group was held, want %s", got, RunID(id, "quick"))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("run %s did not start: the run waiting for its group holds the other worker", RunID(id, "quick"))
		}
	}
	waited := p.plans.Load()
	holdsBack(t, p, st, "the group was held", 5)
	if c := p.calls(second); c != 1 {
		t.Errorf("the waiting run ran %d times, want once", c)
	}
	// Waiting costs no planning: 5 intakes and 4 runs (first and the quick ones) planned
	// before the release, the waiting run once more when it finally goes.
	if waited != 9 || p.plans.Load() != 10 {
		t.Errorf("Plan was called %d times while the run waited and %d in all, want 9 and 10", waited, p.plans.Load())
	}
}

// The per-repository limit holds across daemons sharing the database.
func TestRepoLimitHoldsAcrossDaemons(t *testing.T) {
	db := storetest.SQLite(t)
	st1, st2 := db.Open(t), db.Open(t)
	p := newFakePipeline(t, "name: block\non: {dispatch: {}}\nagents:\n  a: {image: x, command: [x]}\n")
	limit := func(o *Options) { o.MaxPerRepo = 1; o.LeaseTTL = 10 * time.Second }
	startDaemon(t, st1, p, "one", limit)
	startDaemon(t, st2, p, "two", limit)
	recordDispatch(t, st1, "first", "block")
	recordDispatch(t, st1, "second", "block")
	<-p.started
	waitFor(t, "the other run to wait for the repository's slot", 10*time.Second, func() bool {
		runs, err := st1.ListRuns(context.Background(), store.RunFilter{Status: store.RunWaiting})
		return err == nil && len(runs) == 1
	})
	holdsBack(t, p, st1, "the repository's one slot was taken", 2)
}

// Shutdown stops intake at once, lets runs finish within the grace, then gives the rest back
// to the queue without consuming an attempt.
func TestShutdownDrains(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	p := newFakePipeline(t, blockRoutine)
	d, cancel, done := startDaemon(t, st, p, "one", func(o *Options) { o.ShutdownGrace = 400 * time.Millisecond })
	recordDispatch(t, st, "first", "block")
	<-p.started
	cancel()
	waitFor(t, "draining", 5*time.Second, d.Draining)
	if _, err := d.RecordDelivery(context.Background(), store.Delivery{ID: "late", Event: EventDispatch, Body: []byte("{}")}); err != ErrDraining {
		t.Errorf("RecordDelivery while draining = %v, want ErrDraining", err)
	}
	start := time.Now()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not stop after its grace")
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("stopped after %s, before the grace", took)
	}
	run, _ := st.GetRun(context.Background(), RunID("first", "block"))
	if run.Status != store.RunQueued {
		t.Errorf("run status after shutdown = %s, want queued", run.Status)
	}
	jobs, _ := st.ListJobs(context.Background(), store.JobFilter{RunID: run.ID})
	if len(jobs) != 1 || jobs[0].State != store.JobAvailable || jobs[0].Attempts != 0 {
		t.Fatalf("run job after shutdown = %+v, want available with 0 attempts", jobs)
	}
	// The next daemon runs it.
	p2 := newFakePipeline(t, blockRoutine)
	close(p2.release)
	startDaemon(t, st, p2, "one", nil)
	waitFor(t, "the requeued run to succeed", 20*time.Second, func() bool {
		r, _ := st.GetRun(context.Background(), run.ID)
		return r.Status == store.RunCompleted && r.Conclusion == "success"
	})
}

// A run that finishes within the grace completes normally.
func TestShutdownLetsRunsFinishWithinGrace(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	p := newFakePipeline(t, blockRoutine)
	_, cancel, done := startDaemon(t, st, p, "one", func(o *Options) { o.ShutdownGrace = 10 * time.Second })
	recordDispatch(t, st, "first", "block")
	<-p.started
	cancel()
	time.AfterFunc(200*time.Millisecond, func() { close(p.release) })
	<-done
	run, _ := st.GetRun(context.Background(), RunID("first", "block"))
	if run.Status != store.RunCompleted || run.Conclusion != "success" {
		t.Errorf("run = %s/%s, want completed/success", run.Status, run.Conclusion)
	}
}

// Schedules fire once per tick across two daemons, and a missed tick fires once.
func TestScheduleFiresOncePerTickAcrossDaemons(t *testing.T) {
	for _, tc := range databases {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.db(t)
			st1, st2 := db.Open(t), db.Open(t)
			p := newFakePipeline(t, `name: tick
on: {schedule: [{cron: "@every 1s"}]}
agents:
  a: {image: x, command: [x]}
`)
			sched := func(o *Options) { o.NoSchedules = false; o.ScheduleTick = 50 * time.Millisecond }
			startDaemon(t, st1, p, "one", sched)
			startDaemon(t, st2, p, "two", sched)
			waitFor(t, "3 scheduled runs", 20*time.Second, func() bool { return len(completedRuns(t, st1)) >= 3 })
			p.mu.Lock()
			defer p.mu.Unlock()
			for tick, n := range p.ticks {
				if n != 1 {
					t.Errorf("tick %s ran %d times, want once", tick, n)
				}
			}
			if len(p.ticks) < 3 {
				t.Errorf("%d ticks ran, want at least 3", len(p.ticks))
			}
		})
	}
}

func TestMissedTicksFireOnce(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	p := newFakePipeline(t, `name: nightly
on: {schedule: [{cron: "*/5 * * * *", timezone: "Europe/Berlin"}]}
agents:
  a: {image: x, command: [x]}
`)
	key := "acme/app/nightly@*/5 * * * *@Europe/Berlin"
	// The daemon was down for an hour: twelve ticks were missed.
	last := time.Now().Add(-time.Hour).Truncate(5 * time.Minute)
	if ok, err := st.ClaimTick(t.Context(), key, last); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	startDaemon(t, st, p, "one", func(o *Options) { o.NoSchedules = false; o.ScheduleTick = 20 * time.Millisecond })
	waitFor(t, "the missed tick", 10*time.Second, func() bool { return len(completedRuns(t, st)) >= 1 })
	time.Sleep(300 * time.Millisecond)
	if n := len(completedRuns(t, st)); n != 1 {
		t.Errorf("%d runs after downtime, want 1", n)
	}
	got, _ := st.LastTick(t.Context(), key)
	if want := time.Now().Truncate(5 * time.Minute); !got.Equal(want) && !got.Equal(want.Add(-5*time.Minute)) {
		t.Errorf("last tick = %v, want the latest 5-minute tick (%v)", got, want)
	}
}

// A run job that keeps dying is concluded with the reason once attempts run out.
func TestExpiredLeasesAreRescued(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	p := newFakePipeline(t, quickRoutine)
	recordDispatch(t, st, "first", "quick")
	// Another daemon leased the intake job and died.
	if jobs, err := st.Lease(t.Context(), "dead-daemon", nil, 10, 100*time.Millisecond); err != nil || len(jobs) != 1 {
		t.Fatalf("lease: %v %v", jobs, err)
	}
	time.Sleep(150 * time.Millisecond)
	startDaemon(t, st, p, "one", nil)
	waitFor(t, "the rescued delivery's run", 10*time.Second, func() bool { return len(completedRuns(t, st)) == 1 })
	var n atomic.Int32
	for range p.runs {
		n.Add(1)
	}
	if n.Load() != 1 {
		t.Errorf("%d runs, want 1", n.Load())
	}
}

// stallStore extends no lease while stalled is set, as a heartbeat that cannot get through
// (a loaded machine, a busy database) would.
type stallStore struct {
	store.Store
	stalled atomic.Bool
}

func (s *stallStore) Heartbeat(ctx context.Context, ids []int64, owner string, ttl time.Duration) ([]int64, error) {
	if s.stalled.Load() {
		return nil, nil
	}
	return s.Store.Heartbeat(ctx, ids, owner, ttl)
}

// slowStore's heartbeats get through, but each only after slow: a database so loaded that
// the leases it extends have expired by the time the next extension lands.
type slowStore struct {
	store.Store
	slow atomic.Int64 // nanoseconds
}

func (s *slowStore) Heartbeat(ctx context.Context, ids []int64, owner string, ttl time.Duration) ([]int64, error) {
	time.Sleep(time.Duration(s.slow.Load()))
	return s.Store.Heartbeat(ctx, ids, owner, ttl)
}

// A daemon whose heartbeats come late does not rescue the job it is still running as if it
// were abandoned (which would make it lease the job again and stop its own attempt): it
// extends its own leases before it rescues any.
func TestALateHeartbeatDoesNotStopTheDaemonsOwnRun(t *testing.T) {
	st := &slowStore{Store: storetest.SQLite(t).Open(t)}
	p := newFakePipeline(t, blockRoutine)
	const ttl = 300 * time.Millisecond
	startDaemon(t, st, p, "one", func(o *Options) { o.LeaseTTL = ttl })
	recordDispatch(t, st, "first", "block")
	id := RunID("first", "block")
	select {
	case <-p.started:
	case <-time.After(20 * time.Second):
		t.Fatal("the run did not start")
	}
	st.slow.Store(int64(2 * ttl))
	select {
	case <-p.started:
		t.Fatal("the daemon took its own running job for abandoned and ran it again")
	case <-time.After(10 * ttl):
	}
	st.slow.Store(0)
	close(p.release)
	waitFor(t, "the run to succeed", 20*time.Second, func() bool {
		r, err := st.GetRun(context.Background(), id)
		return err == nil && r.Status == store.RunCompleted && r.Conclusion == "success"
	})
	if n := p.calls(id); n != 1 {
		t.Errorf("the run ran %d times, want once", n)
	}
}

// A run whose lease expired while it was still running, and that the same daemon leased
// again, is never run twice at once: the stale attempt is stopped and writes nothing, and the
// new one starts after it ended.
func TestRelesedJobDoesNotRunTwiceAtOnce(t *testing.T) {
	st := &stallStore{Store: storetest.SQLite(t).Open(t)}
	p := newFakePipeline(t, blockRoutine)
	startDaemon(t, st, p, "one", func(o *Options) { o.LeaseTTL = 300 * time.Millisecond })
	st.stalled.Store(true)
	recordDispatch(t, st, "first", "block")
	id := RunID("first", "block")
	for range 2 {
		select {
		case <-p.started:
		case <-time.After(20 * time.Second):
			t.Fatal("the run was not leased again after its lease expired")
		}
	}
	st.stalled.Store(false)
	close(p.release)
	waitFor(t, "the run to succeed", 20*time.Second, func() bool {
		r, err := st.GetRun(context.Background(), id)
		return err == nil && r.Status == store.RunCompleted && r.Conclusion == "success"
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.overlaps != 0 {
		t.Errorf("%d attempts of run %s started while another was under way", p.overlaps, id)
	}
}

// Every run that ends failed or cancelled says why, in the store and on its check run.
func TestFailedRunRecordsWhy(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	p := newFakePipeline(t, strings.Replace(quickRoutine, "name: quick", "name: mute-failure", 1))
	startDaemon(t, st, p, "one", nil)
	recordDispatch(t, st, "first", "mute-failure")
	id := RunID("first", "mute-failure")
	waitFor(t, "the run to conclude", 20*time.Second, func() bool {
		r, err := st.GetRun(context.Background(), id)
		return err == nil && r.Status == store.RunCompleted
	})
	r, _ := st.GetRun(context.Background(), id)
	if r.Conclusion != "failure" || r.Error == "" {
		t.Errorf("run = %s/%s with error %q, want failure with a reason", r.Status, r.Conclusion, r.Error)
	}
	if why := p.reasons(id); len(why) != 1 || !strings.Contains(why[0], r.Error) {
		t.Errorf("check-run text = %q, want it to hold the recorded reason %q", why, r.Error)
	}
}

func TestRunReason(t *testing.T) {
	tests := []struct {
		name      string
		res       result.Run
		c         result.Conclusion
		ce        *cancelledError
		want      []string // substrings of the reason; nil: no reason
		wantShown bool
	}{
		{name: "success", res: result.Run{Jobs: []*result.Job{{ID: "a", Outcome: result.Success}}}, c: result.ConclusionSuccess, wantShown: true},
		{name: "neutral", c: result.ConclusionNeutral, wantShown: true},
		{name: "engine error", res: result.Run{Error: "egress proxy did not start"}, c: result.ConclusionFailure,
			want: []string{"egress proxy did not start"}, wantShown: true},
		{name: "job errors", c: result.ConclusionFailure, res: result.Run{Jobs: []*result.Job{
			{ID: "a", Outcome: result.Success},
			{ID: "b", Outcome: result.Error, Error: "prepare workspace: exists"},
			{ID: "c", Outcome: result.Failed, ExitCode: 3},
		}}, want: []string{"job b: error: prepare workspace: exists", "job c: failed (exit code 3)"}, wantShown: true},
		{name: "conflicts", c: result.ConclusionFailure, res: result.Run{Conflicts: []result.Conflict{{Job: "b", Files: []string{"x.go"}}}},
			want: []string{"changes of b conflict", "x.go"}, wantShown: true},
		{name: "nothing known", c: result.ConclusionFailure, want: []string{"concluded failure"}},
		{name: "timed out", c: result.ConclusionTimedOut, res: result.Run{Jobs: []*result.Job{{ID: "a", Outcome: result.TimedOut}}},
			want: []string{"job a: timed_out"}, wantShown: true},
		{name: "cancelled on purpose", c: result.ConclusionCancelled, ce: &cancelledError{reason: "superseded by run r2"},
			res: result.Run{Jobs: []*result.Job{{ID: "a", Outcome: result.Cancelled}}}, want: []string{"superseded by run r2", "job a: cancelled"}},
		{name: "cancelled without a reason", c: result.ConclusionCancelled, ce: &cancelledError{}, want: []string{"cancelled"}},
		{name: "cancelled by the engine", c: result.ConclusionCancelled, want: []string{"concluded cancelled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, shown := runReason(&tt.res, tt.c, tt.ce)
			if tt.want == nil && got != "" {
				t.Errorf("reason = %q, want none", got)
			}
			if tt.want != nil && got == "" {
				t.Errorf("no reason for a run concluded %s", tt.c)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("reason = %q, want it to contain %q", got, w)
				}
			}
			if shown != tt.wantShown {
				t.Errorf("shown = %v, want %v", shown, tt.wantShown)
			}
		})
	}
}
