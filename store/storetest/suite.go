package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/store"
)

// Run runs the whole contract suite against the implementation newDB makes databases for.
func Run(t *testing.T, newDB NewDB) {
	tests := []struct {
		name string
		fn   func(t *testing.T, db DB)
	}{
		{"migrations are idempotent and safe to run concurrently", testMigrations},
		{"a duplicate delivery is recorded once and enqueues nothing", testDeliveryDedupe},
		{"parallel duplicates across two stores yield one fresh delivery", testDeliveryParallelDedupe},
		{"a failed delivery is processed again when redelivered", testRedeliveryAfterFailure},
		{"enqueue dedupes on the key", testEnqueueDedupe},
		{"lease filters on kind and respects run-after", testLeaseKindsAndRunAfter},
		{"two stores with 8 workers each complete 500 jobs exactly once", testLeaseExclusivity},
		{"an expired lease is rescued and the old owner loses it", testRescue},
		{"fail retries while attempts remain and then is dead", testFailRetries},
		{"requeue gives a job back without using an attempt", testRequeue},
		{"cancelling a run's jobs takes the lease from its worker", testCancelJobs},
		{"runs are created once per key and updated", testRuns},
		{"a concurrency group has one live holder", testGroups},
		{"a schedule tick is claimed once across two stores", testClaimTick},
		{"tokens are checked by hash and revocable", testTokens},
		{"an expired token is refused as expired, not unknown", testTokenExpiry},
		{"tokens are listed with scope, expiry and a last use written at most once a minute", testTokenList},
		{"job logs are recorded per job", testJobLogs},
		{"a run's files are kept for every daemon to serve", testRunFiles},
		{"stores sharing a database have one identity, other databases another", testIdentity},
		{"stores sharing a database have the same keys, one per name", testKeys},
		{"runs and jobs move only as the state machine allows; a requeue takes the run back to queued", testRunStates},
		{"a completed run is run again from the start", testRerun},
		{"a session ends with its expiry, its sign-out and its token", testSessions},
		{"daemons sharing a database see each other's internal addresses", testDaemonAddr},
		{"runs are listed by trigger and finish time, page after page by cursor", testRunListing},
		{"a re-run records the run it re-runs", testRerunOf},
		{"a job's cancel request is recorded once, never for a finished job, and seen by every store", testRunJobCancel},
		{"model spend adds up per day, repository and routine, whichever store records it", testModelSpend},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			defer failOnMust(t)
			tc.fn(t, newDB(t))
		})
	}
}

func testMigrations(t *testing.T, db DB) {
	// Concurrent first opens race to migrate; all must succeed and agree.
	ctx := ctxT(t)
	var wg sync.WaitGroup
	stores := make([]store.Store, 4)
	errs := make(chan error, len(stores))
	for i := range stores {
		wg.Go(func() {
			s, err := store.Open(ctx, db.DSN)
			if err != nil {
				errs <- err
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	close(errs)
	t.Cleanup(func() {
		for _, s := range stores {
			if s != nil {
				_ = s.Close()
			}
		}
	})
	for err := range errs {
		t.Fatalf("concurrent first open: %v", err)
	}
	_, _, err := stores[0].Enqueue(ctx, store.Job{Kind: "k", Key: "survives"})
	check(t, err)
	// A later open applies nothing and keeps the data.
	again := db.Open(t)
	j := must(again.ListJobs(ctx, store.JobFilter{Kind: "k"}))
	if len(j) != 1 || j[0].Key != "survives" {
		t.Fatalf("after reopening, jobs = %+v, want the one enqueued before", j)
	}
}

func testDeliveryDedupe(t *testing.T, db DB) {
	s := db.Open(t)
	ctx := ctxT(t)
	d := store.Delivery{ID: "d-1", Event: "push", Body: []byte(`{"ref":"refs/heads/main"}`)}
	if fresh := must(s.RecordDelivery(ctx, d)); !fresh {
		t.Fatal("first delivery: fresh = false, want true")
	}
	if fresh := must(s.RecordDelivery(ctx, d)); fresh {
		t.Fatal("duplicate delivery: fresh = true, want false")
	}
	got := must(s.GetDelivery(ctx, "d-1"))
	if got.Event != "push" || !bytes.Equal(got.Body, d.Body) || got.Status != store.DeliveryPending || got.Generation != 1 {
		t.Fatalf("stored delivery = %+v", got)
	}
	jobs := must(s.ListJobs(ctx, store.JobFilter{Kind: store.KindIntake}))
	if len(jobs) != 1 || string(jobs[0].Payload) != "d-1" || jobs[0].DeliveryID != "d-1" || jobs[0].Result != nil ||
		jobs[0].State != store.JobAvailable || jobs[0].MaxAttempts != store.DefaultMaxAttempts || jobs[0].RunAfter.IsZero() {
		t.Fatalf("intake jobs = %+v, want one for d-1", jobs)
	}
	if _, err := s.GetDelivery(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown delivery: err = %v, want ErrNotFound", err)
	}
	if _, err := s.RecordDelivery(ctx, store.Delivery{Event: "push"}); err == nil {
		t.Fatal("a delivery without id was accepted")
	}
}

func testDeliveryParallelDedupe(t *testing.T, db DB) {
	a, b := db.Open(t), db.Open(t)
	ctx := ctxT(t)
	var fresh atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			f, err := s.RecordDelivery(ctx, store.Delivery{ID: "same", Event: "push", Body: []byte("x")})
			if err != nil {
				errs <- err
			}
			if f {
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if fresh.Load() != 1 {
		t.Fatalf("%d of 32 parallel duplicates were fresh, want 1", fresh.Load())
	}
	if jobs := must(a.ListJobs(ctx, store.JobFilter{Kind: store.KindIntake})); len(jobs) != 1 {
		t.Fatalf("%d intake jobs, want 1", len(jobs))
	}
}

func testRedeliveryAfterFailure(t *testing.T, db DB) {
	s := db.Open(t)
	ctx := ctxT(t)
	d := store.Delivery{ID: "d-fail", Event: "pull_request", Body: []byte("{}")}
	must(s.RecordDelivery(ctx, d))
	leases := must(s.Lease(ctx, "w1", []string{store.KindIntake}, 1, time.Minute))
	if len(leases) != 1 {
		t.Fatalf("leased %d intake jobs, want 1", len(leases))
	}
	// While it is being processed, a redelivery is a duplicate.
	if f := must(s.RecordDelivery(ctx, d)); f {
		t.Fatal("redelivery while processing: fresh = true, want false")
	}
	dead := must(s.Fail(ctx, leases[0].ID, "w1", "config is broken", -1))
	if !dead {
		t.Fatal("a permanent failure left the job alive")
	}
	got := must(s.GetDelivery(ctx, d.ID))
	if got.Status != store.DeliveryFailed || got.Error != "config is broken" {
		t.Fatalf("after the intake died, delivery = %s %q, want failed with the reason", got.Status, got.Error)
	}
	if f := must(s.RecordDelivery(ctx, d)); !f {
		t.Fatal("redelivery of a failed delivery: fresh = false, want true")
	}
	got = must(s.GetDelivery(ctx, d.ID))
	if got.Status != store.DeliveryPending || got.Generation != 2 {
		t.Fatalf("after redelivery, delivery = %s gen %d, want pending gen 2", got.Status, got.Generation)
	}
	leases = must(s.Lease(ctx, "w2", []string{store.KindIntake}, 10, time.Minute))
	if len(leases) != 1 || leases[0].DeliveryID != d.ID || leases[0].Attempts != 1 {
		t.Fatalf("after redelivery leased %+v, want one fresh intake job", leases)
	}
	check(t, s.Complete(ctx, leases[0].ID, "w2", []byte(`{"runs":1}`)))
	if got := must(s.GetDelivery(ctx, d.ID)); got.Status != store.DeliveryDone {
		t.Fatalf("after the intake completed, delivery is %s, want done", got.Status)
	}
	if f := must(s.RecordDelivery(ctx, d)); f {
		t.Fatal("redelivery of a done delivery: fresh = true, want false")
	}
}

func testEnqueueDedupe(t *testing.T, db DB) {
	s := db.Open(t)
	ctx := ctxT(t)
	id1, fresh1, err := s.Enqueue(ctx, store.Job{Kind: "run", Key: "run/abc", Payload: []byte("1")})
	check(t, err)
	id2, fresh2, err := s.Enqueue(ctx, store.Job{Kind: "run", Key: "run/abc", Payload: []byte("2")})
	check(t, err)
	if !fresh1 || fresh2 || id1 != id2 {
		t.Fatalf("enqueue twice with one key: (%d,%v) then (%d,%v), want the same id, fresh only first", id1, fresh1, id2, fresh2)
	}
	j := must(s.GetJob(ctx, id1))
	if string(j.Payload) != "1" || j.MaxAttempts != store.DefaultMaxAttempts || j.State != store.JobAvailable {
		t.Fatalf("job = %+v", j)
	}
	// Jobs without a key are never deduped.
	a, _, _ := s.Enqueue(ctx, store.Job{Kind: "run"})
	b, _, _ := s.Enqueue(ctx, store.Job{Kind: "run"})
	if a == b {
		t.Fatal("two keyless jobs got one id")
	}
	if _, _, err := s.Enqueue(ctx, store.Job{}); err == nil {
		t.Fatal("a job without kind was accepted")
	}
	if _, err := s.GetJob(ctx, 999999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get unknown job: %v, want ErrNotFound", err)
	}
}

func testLeaseKindsAndRunAfter(t *testing.T, db DB) {
	clock := NewClock()
	s := db.Open(t, store.WithClock(clock.Now))
	ctx := ctxT(t)
	must3(t)(s.Enqueue(ctx, store.Job{Kind: "a", Key: "a1"}))
	must3(t)(s.Enqueue(ctx, store.Job{Kind: "b", Key: "b1"}))
	must3(t)(s.Enqueue(ctx, store.Job{Kind: "a", Key: "later", RunAfter: clock.Now().Add(time.Hour)}))
	got := must(s.Lease(ctx, "w", []string{"b"}, 10, time.Minute))
	if len(got) != 1 || got[0].Key != "b1" || got[0].LeaseOwner != "w" || !got[0].LeaseExpiresAt.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("lease kind b = %+v", got)
	}
	got = must(s.Lease(ctx, "w", nil, 10, time.Minute))
	if len(got) != 1 || got[0].Key != "a1" {
		t.Fatalf("lease any kind = %+v, want only a1 (later is not due)", got)
	}
	clock.Advance(time.Hour)
	got = must(s.Lease(ctx, "w", []string{"a", "c"}, 10, time.Minute))
	if len(got) != 1 || got[0].Key != "later" {
		t.Fatalf("lease after an hour = %+v, want later", got)
	}
	counts := must(s.CountJobs(ctx))
	if counts[store.JobLeased] != 3 {
		t.Fatalf("counts = %v, want 3 leased", counts)
	}
}

func testLeaseExclusivity(t *testing.T, db DB) {
	const jobs, workers = 500, 8
	stores := []store.Store{db.Open(t), db.Open(t)}
	ctx := ctxT(t)
	for i := range jobs {
		must3(t)(stores[i%2].Enqueue(ctx, store.Job{Kind: "work", Key: fmt.Sprintf("job-%d", i), Payload: []byte(fmt.Sprint(i))}))
	}
	var mu sync.Mutex
	done := map[int64]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for si, s := range stores {
		for w := range workers {
			owner := fmt.Sprintf("daemon%d/worker%d", si, w)
			wg.Go(func() {
				for {
					leases, err := s.Lease(ctx, owner, []string{"work"}, 3, time.Minute)
					if err != nil {
						errs <- err
						return
					}
					if len(leases) == 0 {
						return
					}
					for _, l := range leases {
						mu.Lock()
						done[l.ID]++
						mu.Unlock()
						if err := s.Complete(ctx, l.ID, owner, []byte(`{"ok":true}`)); err != nil {
							errs <- err
							return
						}
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(done) != jobs {
		t.Fatalf("%d distinct jobs ran, want %d", len(done), jobs)
	}
	for id, n := range done {
		if n != 1 {
			t.Errorf("job %d ran %d times", id, n)
		}
	}
	counts := must(stores[0].CountJobs(ctx))
	if counts[store.JobCompleted] != jobs || len(counts) != 1 {
		t.Fatalf("counts = %v, want %d completed only", counts, jobs)
	}
}

func testRescue(t *testing.T, db DB) {
	clock := NewClock()
	a, b := db.Open(t, store.WithClock(clock.Now)), db.Open(t, store.WithClock(clock.Now))
	ctx := ctxT(t)
	id, _, err := a.Enqueue(ctx, store.Job{Kind: "run", Key: "r", MaxAttempts: 2})
	check(t, err)
	if l := must(a.Lease(ctx, "A", nil, 1, time.Minute)); len(l) != 1 {
		t.Fatal("A leased nothing")
	}
	clock.Advance(30 * time.Second)
	if lost := must(a.Heartbeat(ctx, []int64{id}, "A", time.Minute)); len(lost) != 0 {
		t.Fatalf("A's heartbeat lost %v", lost)
	}
	clock.Advance(59 * time.Second) // the heartbeat moved expiry to +90s
	if r := must(b.RescueExpired(ctx, clock.Now())); len(r) != 0 {
		t.Fatalf("rescued a heartbeated lease: %+v", r)
	}
	clock.Advance(2 * time.Second)
	r := must(b.RescueExpired(ctx, clock.Now()))
	if len(r) != 1 || r[0].ID != id || r[0].State != store.JobAvailable || !strings.Contains(r[0].LastError, "expired") {
		t.Fatalf("rescue = %+v, want job %d available again", r, id)
	}
	lb := must(b.Lease(ctx, "B", nil, 1, time.Minute))
	if len(lb) != 1 || lb[0].Attempts != 2 {
		t.Fatalf("B leased %+v, want the job at attempt 2", lb)
	}
	if err := a.Complete(ctx, id, "A", nil); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("stale owner's Complete: err = %v, want ErrLeaseLost", err)
	}
	if lost := must(a.Heartbeat(ctx, []int64{id}, "A", time.Minute)); len(lost) != 1 || lost[0] != id {
		t.Fatalf("stale owner's heartbeat lost = %v, want [%d]", lost, id)
	}
	if _, err := a.Fail(ctx, id, "A", "x", 0); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("stale owner's Fail: err = %v, want ErrLeaseLost", err)
	}
	// B dies too; no attempts remain.
	clock.Advance(2 * time.Minute)
	r = must(a.RescueExpired(ctx, clock.Now()))
	if len(r) != 1 || r[0].State != store.JobDead || !strings.Contains(r[0].LastError, "lease expired after 2 attempts") {
		t.Fatalf("second rescue = %+v, want dead with the reason", r)
	}
	j := must(a.GetJob(ctx, id))
	if j.State != store.JobDead || j.LeaseOwner != "" || j.FinishedAt.IsZero() {
		t.Fatalf("job after rescue = %+v", j)
	}
}

func testFailRetries(t *testing.T, db DB) {
	clock := NewClock()
	s := db.Open(t, store.WithClock(clock.Now))
	ctx := ctxT(t)
	id, _, err := s.Enqueue(ctx, store.Job{Kind: "run", Key: "f", MaxAttempts: 2})
	check(t, err)
	must(s.Lease(ctx, "w", nil, 1, time.Minute))
	if dead := must(s.Fail(ctx, id, "w", "docker hiccup", 10*time.Second)); dead {
		t.Fatal("dead after the first of two attempts")
	}
	if l := must(s.Lease(ctx, "w", nil, 1, time.Minute)); len(l) != 0 {
		t.Fatal("leased before the retry delay passed")
	}
	clock.Advance(10 * time.Second)
	l := must(s.Lease(ctx, "w", nil, 1, time.Minute))
	if len(l) != 1 || l[0].LastError != "docker hiccup" {
		t.Fatalf("retry lease = %+v", l)
	}
	if dead := must(s.Fail(ctx, id, "w", "docker hiccup again", time.Second)); !dead {
		t.Fatal("not dead after the last attempt")
	}
	j := must(s.GetJob(ctx, id))
	if j.State != store.JobDead || !strings.Contains(j.LastError, "docker hiccup again") || !strings.Contains(j.LastError, "2 attempts") {
		t.Fatalf("job = %s %q", j.State, j.LastError)
	}
}

func testRequeue(t *testing.T, db DB) {
	s := db.Open(t)
	ctx := ctxT(t)
	id, _, err := s.Enqueue(ctx, store.Job{Kind: "run", Key: "q", MaxAttempts: 1})
	check(t, err)
	must(s.Lease(ctx, "w", nil, 1, time.Minute))
	if err := s.Requeue(ctx, id, "other", 0); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("requeue by a non-owner: %v, want ErrLeaseLost", err)
	}
	check(t, s.Requeue(ctx, id, "w", 0))
	l := must(s.Lease(ctx, "w2", nil, 1, time.Minute))
	if len(l) != 1 || l[0].Attempts != 1 {
		t.Fatalf("after requeue leased %+v, want attempt 1 of 1", l)
	}
	check(t, s.Complete(ctx, id, "w2", nil))
	if err := s.Complete(ctx, id, "w2", nil); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("completing twice: %v, want ErrLeaseLost", err)
	}

	// Given back for later, a job is not leased before its time, and keeps its attempt.
	later, _, err := s.Enqueue(ctx, store.Job{Kind: "run", Key: "later", MaxAttempts: 1})
	check(t, err)
	must(s.Lease(ctx, "w", nil, 1, time.Minute))
	check(t, s.Requeue(ctx, later, "w", time.Hour))
	if l := must(s.Lease(ctx, "w3", nil, 1, time.Minute)); len(l) != 0 {
		t.Fatalf("a job requeued for an hour was leased at once: %+v", l)
	}
	if j := must(s.GetJob(ctx, later)); j.State != store.JobAvailable || j.Attempts != 0 || time.Until(j.RunAfter) < 59*time.Minute {
		t.Fatalf("requeued job: state %s, attempts %d, run after %s; want available in an hour, no attempt spent", j.State, j.Attempts, j.RunAfter)
	}
}

func testCancelJobs(t *testing.T, db DB) {
	s := db.Open(t)
	ctx := ctxT(t)
	leasedID, _, _ := s.Enqueue(ctx, store.Job{Kind: "agent", RunID: "run-1"})
	must(s.Lease(ctx, "w", nil, 1, time.Minute))
	waitingID, _, _ := s.Enqueue(ctx, store.Job{Kind: "agent", RunID: "run-1"})
	otherID, _, _ := s.Enqueue(ctx, store.Job{Kind: "agent", RunID: "run-2"})
	if n := must(s.CancelJobs(ctx, "run-1", "superseded")); n != 2 {
		t.Fatalf("cancelled %d jobs, want 2", n)
	}
	if err := s.Complete(ctx, leasedID, "w", nil); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("complete a cancelled job: %v, want ErrLeaseLost", err)
	}
	for id, want := range map[int64]string{leasedID: store.JobCancelled, waitingID: store.JobCancelled, otherID: store.JobAvailable} {
		if j := must(s.GetJob(ctx, id)); j.State != want {
			t.Errorf("job %d is %s, want %s", id, j.State, want)
		}
	}
}

func testRuns(t *testing.T, db DB) {
	s := db.Open(t)
	ctx := ctxT(t)
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	r := store.Run{CreatedAt: base, Key: "d-1/review", Repo: "o/r", Routine: "review", SHA: "abc", EventKind: "push", DeliveryID: "d-1",
		ConcurrencyGroup: "g", Plan: []byte(`{"agents":[]}`)}
	first, created, err := s.CreateRun(ctx, r)
	check(t, err)
	if !created || first.ID == "" || first.Status != store.RunQueued || !first.CreatedAt.Equal(base) || string(first.Plan) != `{"agents":[]}` || first.CreatedAt.IsZero() {
		t.Fatalf("created run = %+v (created %v)", first, created)
	}
	again, created, err := s.CreateRun(ctx, r)
	check(t, err)
	if created || again.ID != first.ID {
		t.Fatalf("retried CreateRun made %+v (created %v), want the first run", again, created)
	}
	other, _, err := s.CreateRun(ctx, store.Run{CreatedAt: base.Add(time.Second), Key: "d-2/review", Repo: "o/x", Routine: "review"})
	check(t, err)
	start := time.Now().UTC().Truncate(time.Microsecond)
	check(t, s.UpdateRun(ctx, store.Run{ID: first.ID, Status: store.RunRunning, StartedAt: start}))
	got := must(s.GetRun(ctx, first.ID))
	if got.Status != store.RunRunning || !got.StartedAt.Equal(start) || string(got.Plan) != `{"agents":[]}` {
		t.Fatalf("after update, run = %+v", got)
	}
	if n := must(s.CountRunning(ctx, "o/r")); n != 1 {
		t.Fatalf("running in o/r = %d, want 1", n)
	}
	if n := must(s.CountRunning(ctx, "o/x")); n != 0 {
		t.Fatalf("running in o/x = %d, want 0", n)
	}
	tests := []struct {
		name string
		f    store.RunFilter
		want []string
	}{
		{"all, newest first", store.RunFilter{}, []string{other.ID, first.ID}},
		{"by repo", store.RunFilter{Repo: "o/r"}, []string{first.ID}},
		{"by status", store.RunFilter{Status: store.RunQueued}, []string{other.ID}},
		{"by delivery", store.RunFilter{DeliveryID: "d-1"}, []string{first.ID}},
		{"limited", store.RunFilter{Limit: 1}, []string{other.ID}},
		{"by repo and status", store.RunFilter{Repo: "o/x", Status: store.RunQueued}, []string{other.ID}},
		{"filters that exclude each other", store.RunFilter{Repo: "o/r", Status: store.RunQueued}, nil},
	}
	for _, tc := range tests {
		runs := must(s.ListRuns(ctx, tc.f))
		var ids []string
		for _, r := range runs {
			ids = append(ids, r.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
			t.Errorf("%s: ids = %v, want %v", tc.name, ids, tc.want)
		}
	}
	if err := s.UpdateRun(ctx, store.Run{ID: "missing", Status: store.RunRunning}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update a missing run: %v, want ErrNotFound", err)
	}
	if _, err := s.GetRun(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get a missing run: %v, want ErrNotFound", err)
	}
}

func testGroups(t *testing.T, db DB) {
	a, b := db.Open(t), db.Open(t)
	ctx := ctxT(t)
	older, _, _ := a.CreateRun(ctx, store.Run{Key: "older", Repo: "o/r", Routine: "x"})
	newer, _, _ := a.CreateRun(ctx, store.Run{Key: "newer", Repo: "o/r", Routine: "x"})
	ok, holder, err := a.AcquireGroup(ctx, "review-7", older.ID)
	check(t, err)
	if !ok || holder != older.ID {
		t.Fatalf("first acquire: ok %v holder %s", ok, holder)
	}
	if ok, _, _ := a.AcquireGroup(ctx, "review-7", older.ID); !ok {
		t.Fatal("the holder could not acquire again")
	}
	ok, holder, err = b.AcquireGroup(ctx, "review-7", newer.ID)
	check(t, err)
	if ok || holder != older.ID {
		t.Fatalf("newer run acquired a held group: ok %v holder %s", ok, holder)
	}
	// cancel-in-progress: the older run is concluded, the group passes on.
	check(t, b.UpdateRun(ctx, store.Run{ID: older.ID, Status: store.RunCompleted, Conclusion: "cancelled"}))
	ok, holder, err = b.AcquireGroup(ctx, "review-7", newer.ID)
	check(t, err)
	if !ok || holder != newer.ID {
		t.Fatalf("after the older run completed: ok %v holder %s", ok, holder)
	}
	check(t, b.ReleaseGroup(ctx, "review-7", older.ID)) // not the holder: no effect
	if ok, _, _ := a.AcquireGroup(ctx, "review-7", older.ID); ok {
		t.Fatal("a release by a non-holder freed the group")
	}
	check(t, b.ReleaseGroup(ctx, "review-7", newer.ID))
	third, _, _ := a.CreateRun(ctx, store.Run{Key: "third", Repo: "o/r", Routine: "x"})
	if ok, _, _ := a.AcquireGroup(ctx, "review-7", third.ID); !ok {
		t.Fatal("a released group could not be acquired")
	}
	// A holder whose run row is gone (a crash before it was written) does not block forever.
	check(t, b.ReleaseGroup(ctx, "review-7", third.ID))
	if ok, _, _ := a.AcquireGroup(ctx, "g2", "ghost"); !ok {
		t.Fatal("could not acquire a free group for a run without a row")
	}
	if ok, _, _ := a.AcquireGroup(ctx, "g2", third.ID); !ok {
		t.Fatal("a group held by a run without a row was not taken over")
	}
}

func testClaimTick(t *testing.T, db DB) {
	a, b := db.Open(t), db.Open(t)
	ctx := ctxT(t)
	tick := time.Date(2025, 6, 2, 3, 0, 0, 0, time.UTC)
	if last := must(a.LastTick(ctx, "o/r:nightly")); !last.IsZero() {
		t.Fatalf("last tick before any = %v", last)
	}
	var won atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			ok, err := s.ClaimTick(ctx, "o/r:nightly", tick)
			if err != nil {
				errs <- err
			}
			if ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if won.Load() != 1 {
		t.Fatalf("%d claims of one tick won, want 1", won.Load())
	}
	if ok := must(a.ClaimTick(ctx, "o/r:other", tick)); !ok {
		t.Fatal("another routine could not claim the same instant")
	}
	must(a.ClaimTick(ctx, "o/r:nightly", tick.Add(-24*time.Hour)))
	if last := must(b.LastTick(ctx, "o/r:nightly")); !last.Equal(tick) {
		t.Fatalf("last tick = %v, want %v", last, tick)
	}
}

func testTokens(t *testing.T, db DB) {
	s := db.Open(t)
	ctx := ctxT(t)
	plain := must(s.CreateToken(ctx, store.Token{Name: "ci", Scope: store.ScopeRead}))
	if len(plain) < 40 {
		t.Fatalf("token %q is too short", plain)
	}
	if _, err := s.CreateToken(ctx, store.Token{Name: "ci", Scope: store.ScopeAdmin}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second token for one name: %v, want ErrExists", err)
	}
	tests := []struct {
		name, token, want string
	}{
		{"the token", plain, "ci"},
		{"a changed token", plain[:len(plain)-1] + "x", ""},
		{"empty", "", ""},
		{"the hash is not the token", strings.Repeat("a", 64), ""},
	}
	for _, tc := range tests {
		tok, err := s.CheckToken(ctx, tc.token)
		if tc.want == "" {
			if !errors.Is(err, store.ErrNotFound) || tok.Name != "" {
				t.Errorf("%s: CheckToken = %+v, %v; want ErrNotFound", tc.name, tok, err)
			}
			continue
		}
		if err != nil || tok.Name != tc.want || tok.Scope != store.ScopeRead || !tok.ExpiresAt.IsZero() {
			t.Errorf("%s: CheckToken = %+v, %v; want %q with scope read, no expiry", tc.name, tok, err, tc.want)
		}
	}
	check(t, s.RevokeToken(ctx, "ci"))
	if _, err := s.CheckToken(ctx, plain); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a revoked token: %v, want ErrNotFound", err)
	}
	if err := s.RevokeToken(ctx, "ci"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke twice: %v, want ErrNotFound", err)
	}
	for _, bad := range []store.Token{
		{Name: "", Scope: store.ScopeRead},
		{Name: "a\x1b]52;c;x\x07", Scope: store.ScopeRead},
		{Name: "noscope"},
		{Name: "root", Scope: "root"},
	} {
		if _, err := s.CreateToken(ctx, bad); err == nil {
			t.Errorf("CreateToken(%+v) succeeded", bad)
		}
	}
}

func testTokenExpiry(t *testing.T, db DB) {
	clock := NewClock()
	s := db.Open(t, store.WithClock(clock.Now))
	ctx := ctxT(t)
	expires := clock.Now().Add(time.Hour)
	plain := must(s.CreateToken(ctx, store.Token{Name: "nightly", Scope: store.ScopeDispatch, ExpiresAt: expires}))
	if tok := must(s.CheckToken(ctx, plain)); tok.Scope != store.ScopeDispatch || !tok.ExpiresAt.Equal(expires) {
		t.Fatalf("before expiry: %+v, want scope dispatch expiring at %v", tok, expires)
	}
	clock.Advance(time.Hour)
	tok, err := s.CheckToken(ctx, plain)
	if !errors.Is(err, store.ErrTokenExpired) || tok.Name != "nightly" || !tok.ExpiresAt.Equal(expires) {
		t.Fatalf("at expiry: %+v, %v; want ErrTokenExpired with the token's name and expiry", tok, err)
	}
	if _, err := s.CreateToken(ctx, store.Token{Name: "late", Scope: store.ScopeRead, ExpiresAt: clock.Now()}); err == nil ||
		!strings.Contains(err.Error(), "not in the future") {
		t.Fatalf("a token expiring now: %v, want it refused", err)
	}
	// An expired token is still listed (so its owner sees why it fails) until revoked.
	if list := must(s.ListTokens(ctx)); len(list) != 1 || !list[0].Expired(clock.Now()) {
		t.Fatalf("tokens = %+v, want the expired one", list)
	}
}

func testTokenList(t *testing.T, db DB) {
	clock := NewClock()
	s := db.Open(t, store.WithClock(clock.Now))
	other := db.Open(t, store.WithClock(clock.Now)) // another daemon on the same database
	ctx := ctxT(t)
	created := clock.Now()
	readTok := must(s.CreateToken(ctx, store.Token{Name: "reader", Scope: store.ScopeRead}))
	must(s.CreateToken(ctx, store.Token{Name: "admin", Scope: store.ScopeAdmin, ExpiresAt: created.Add(48 * time.Hour)}))
	lastUsed := func() time.Time {
		for _, tok := range must(other.ListTokens(ctx)) {
			if tok.Name == "reader" {
				return tok.LastUsedAt
			}
		}
		t.Fatal("reader is not listed")
		return time.Time{}
	}
	if !lastUsed().IsZero() {
		t.Fatalf("an unused token has a last use: %v", lastUsed())
	}
	clock.Advance(time.Second)
	first := clock.Now()
	must(s.CheckToken(ctx, readTok))
	if !lastUsed().Equal(first) {
		t.Fatalf("last used = %v, want %v", lastUsed(), first)
	}
	// Within the minute, uses on either daemon write nothing.
	clock.Advance(store.LastUsedEvery - time.Second)
	must(s.CheckToken(ctx, readTok))
	must(other.CheckToken(ctx, readTok))
	if !lastUsed().Equal(first) {
		t.Fatalf("last used = %v within a minute of %v: written more than once a minute", lastUsed(), first)
	}
	clock.Advance(time.Second)
	must(other.CheckToken(ctx, readTok))
	if !lastUsed().Equal(clock.Now()) {
		t.Fatalf("last used = %v a minute later, want %v", lastUsed(), clock.Now())
	}
	list := must(s.ListTokens(ctx))
	if len(list) != 2 || list[0].Name != "admin" || list[1].Name != "reader" {
		t.Fatalf("tokens = %+v, want admin then reader", list)
	}
	if a := list[0]; a.Scope != store.ScopeAdmin || !a.CreatedAt.Equal(created) || !a.ExpiresAt.Equal(created.Add(48*time.Hour)) || !a.LastUsedAt.IsZero() {
		t.Fatalf("admin = %+v", a)
	}
}

func testJobLogs(t *testing.T, db DB) {
	s := db.Open(t)
	ctx := ctxT(t)
	id, _, _ := s.Enqueue(ctx, store.Job{Kind: "agent", RunID: "run-9"})
	check(t, s.SetJobLog(ctx, id, "logs/run-9/audit-1.log"))
	jobs := must(s.ListJobs(ctx, store.JobFilter{RunID: "run-9"}))
	if len(jobs) != 1 || jobs[0].LogPath != "logs/run-9/audit-1.log" {
		t.Fatalf("jobs of run-9 = %+v", jobs)
	}
	if err := s.SetJobLog(ctx, 424242, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("log of a missing job: %v, want ErrNotFound", err)
	}
}

// must3 checks a three-value result (id, fresh, err).
func must3(t *testing.T) func(int64, bool, error) {
	return func(_ int64, _ bool, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func testRunFiles(t *testing.T, db DB) {
	s1, s2 := db.Open(t), db.Open(t)
	ctx := ctxT(t)
	if _, err := s2.RunFile(ctx, "r1", "report.md"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("reading a file never saved: %v, want ErrNotFound", err)
	}
	log := []byte(strings.Repeat("step 1: ok\n", 50000)) // half a megabyte, as an agent's log can be
	check(t, s1.SaveRunFile(ctx, "r1", "jobs/audit_api_/log.txt", log))
	check(t, s1.SaveRunFile(ctx, "r1", "report.md", []byte("first")))
	check(t, s1.SaveRunFile(ctx, "r1", "report.md", []byte("# Report\n")))
	check(t, s1.SaveRunFile(ctx, "r2", "report.md", []byte{}))
	// Another daemon on the same database reads what the first one saved.
	if got := must(s2.RunFile(ctx, "r1", "jobs/audit_api_/log.txt")); !bytes.Equal(got, log) {
		t.Errorf("the log came back with %d bytes, want the %d saved", len(got), len(log))
	}
	if got := string(must(s2.RunFile(ctx, "r1", "report.md"))); got != "# Report\n" {
		t.Errorf("report.md = %q, want the file saved last", got)
	}
	if got := must(s2.RunFile(ctx, "r2", "report.md")); len(got) != 0 {
		t.Errorf("an empty file came back as %q", got)
	}
	if err := s1.SaveRunFile(ctx, "", "x", nil); err == nil {
		t.Error("a file without a run was saved")
	}
}

func testIdentity(t *testing.T, db DB) {
	ctx := ctxT(t)
	var ids [2]string
	var wg sync.WaitGroup
	for i, s := range []store.Store{db.Open(t), db.Open(t)} {
		wg.Go(func() { ids[i] = must(s.Identity(ctx)) })
	}
	wg.Wait()
	if ids[0] == "" || ids[0] != ids[1] {
		t.Fatalf("two stores on one database have identities %q and %q, want one", ids[0], ids[1])
	}
	if again := must(db.Open(t).Identity(ctx)); again != ids[0] {
		t.Errorf("identity after reopening = %q, want %q", again, ids[0])
	}
}

func testKeys(t *testing.T, db DB) {
	ctx := ctxT(t)
	var keys [2][]byte
	var wg sync.WaitGroup
	for i, s := range []store.Store{db.Open(t), db.Open(t)} {
		wg.Go(func() { keys[i] = must(s.Key(ctx, "run-page")) })
	}
	wg.Wait()
	if len(keys[0]) != 32 || string(keys[0]) != string(keys[1]) {
		t.Fatalf("two stores on one database have keys %x and %x, want one of 32 bytes", keys[0], keys[1])
	}
	if other := must(db.Open(t).Key(ctx, "other")); string(other) == string(keys[0]) {
		t.Error("two names share a key")
	}
	if id := must(db.Open(t).Identity(ctx)); strings.Contains(fmt.Sprintf("%x", keys[0]), id) {
		t.Error("the key is the store's identity, which is not secret")
	}
	if _, err := db.Open(t).Key(ctx, "identity"); err == nil {
		t.Error("the identity was handed out as a key")
	}
}

// runWithJob makes a run whose job owner leases; the run is marked running.
func runWithJob(t *testing.T, s store.Store, key, owner string) (store.Run, store.Job) {
	t.Helper()
	ctx := ctxT(t)
	r, _, err := s.CreateRun(ctx, store.Run{Key: key, Repo: "o/r", Routine: "x"})
	check(t, err)
	_, _, err = s.Enqueue(ctx, store.Job{Kind: "run-" + key, Key: "run/" + key, RunID: r.ID})
	check(t, err)
	js := must(s.Lease(ctx, owner, []string{"run-" + key}, 1, time.Hour))
	if len(js) != 1 {
		t.Fatalf("leased %d jobs of run %s, want 1", len(js), key)
	}
	check(t, s.UpdateRun(ctx, store.Run{ID: r.ID, Status: store.RunRunning}))
	return r, js[0]
}

func wantRun(t *testing.T, s store.Store, id, status, jobState string) {
	t.Helper()
	ctx := ctxT(t)
	r := must(s.GetRun(ctx, id))
	js := must(s.ListJobs(ctx, store.JobFilter{RunID: id}))
	if r.Status != status || len(js) != 1 || js[0].State != jobState {
		t.Fatalf("run %s is %s with jobs %+v, want %s with one %s job", id, r.Status, js, status, jobState)
	}
}

func testRunStates(t *testing.T, db DB) {
	s := db.Open(t)
	ctx := ctxT(t)
	// A drain gives the job back: the run is queued again with it, its attempt unspent.
	r, j := runWithJob(t, s, "drained", "a")
	check(t, s.Requeue(ctx, j.ID, "a", 0))
	wantRun(t, s, r.ID, store.RunQueued, store.JobAvailable)
	// So does a retry after a failed attempt, and a rescued lease.
	r, j = runWithJob(t, s, "retried", "a")
	_, err := s.Fail(ctx, j.ID, "a", "boom", 0)
	check(t, err)
	wantRun(t, s, r.ID, store.RunQueued, store.JobAvailable)
	r, _ = runWithJob(t, s, "rescued", "a")
	_ = must(s.RescueExpired(ctx, time.Now().Add(2*time.Hour)))
	wantRun(t, s, r.ID, store.RunQueued, store.JobAvailable)
	// A run waiting for its group stays waiting when its job waits in the queue.
	r, j = runWithJob(t, s, "waiting", "a")
	check(t, s.UpdateRun(ctx, store.Run{ID: r.ID, Status: store.RunWaiting}))
	check(t, s.Requeue(ctx, j.ID, "a", 0))
	wantRun(t, s, r.ID, store.RunWaiting, store.JobAvailable)

	// Completed is final: no status, no other conclusion.
	r, j = runWithJob(t, s, "done", "a")
	check(t, s.UpdateRun(ctx, store.Run{ID: r.ID, Status: store.RunCompleted, Conclusion: "success"}))
	check(t, s.Complete(ctx, j.ID, "a", nil))
	for _, bad := range []store.Run{
		{ID: r.ID, Status: store.RunRunning},
		{ID: r.ID, Status: store.RunQueued},
		{ID: r.ID, Status: store.RunCompleted, Conclusion: "cancelled"},
		{ID: r.ID, Error: "rewritten"},
	} {
		if err := s.UpdateRun(ctx, bad); !errors.Is(err, store.ErrIllegalTransition) {
			t.Errorf("UpdateRun(%+v) on a completed run = %v, want ErrIllegalTransition", bad, err)
		}
	}
	if got := must(s.GetRun(ctx, r.ID)); got.Status != store.RunCompleted || got.Conclusion != "success" || got.Error != "" {
		t.Errorf("the completed run became %s/%s %q", got.Status, got.Conclusion, got.Error)
	}
	// A finished job is not given back, nor cancelled.
	if err := s.Requeue(ctx, j.ID, "a", 0); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("requeue of a completed job = %v, want ErrLeaseLost", err)
	}
	if n := must(s.CancelJobs(ctx, r.ID, "late")); n != 0 {
		t.Errorf("cancelled %d finished jobs", n)
	}
	if err := s.UpdateRun(ctx, store.Run{ID: r.ID + "-missing", Status: store.RunRunning}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update of a missing run = %v, want ErrNotFound", err)
	}
	for _, c := range []struct{ from, to string }{{store.RunCompleted, store.RunRunning}, {"bogus", store.RunQueued}, {store.RunQueued, "bogus"}} {
		if err := store.CheckRunMove(c.from, c.to); !errors.Is(err, store.ErrIllegalTransition) {
			t.Errorf("CheckRunMove(%q, %q) = %v, want ErrIllegalTransition", c.from, c.to, err)
		}
	}
	if err := store.CheckJobMove(store.JobCompleted, store.JobLeased); !errors.Is(err, store.ErrIllegalTransition) {
		t.Errorf("CheckJobMove(completed, leased) = %v, want ErrIllegalTransition", err)
	}
}

func testRerun(t *testing.T, db DB) {
	s := db.Open(t)
	ctx := ctxT(t)
	r, j := runWithJob(t, s, "again", "a")
	if _, err := s.Rerun(ctx, r.ID); !errors.Is(err, store.ErrIllegalTransition) {
		t.Fatalf("rerun of a running run = %v, want ErrIllegalTransition", err)
	}
	_, err := s.Fail(ctx, j.ID, "a", "broken for good", -1)
	check(t, err)
	check(t, s.UpdateRun(ctx, store.Run{ID: r.ID, Status: store.RunCompleted, Conclusion: "failure", Error: "broken", FinishedAt: time.Now()}))
	check(t, s.SaveRunFile(ctx, r.ID, "result.json", []byte(`{"conclusion":"failure"}`)))
	if n := must(s.Rerun(ctx, r.ID)); n != 1 {
		t.Fatalf("rerun made %d jobs available, want 1", n)
	}
	got := must(s.GetRun(ctx, r.ID))
	if got.Status != store.RunQueued || got.Conclusion != "" || got.Error != "" || !got.FinishedAt.IsZero() {
		t.Errorf("rerun run = %s/%s %q finished %v, want queued with nothing of its earlier end", got.Status, got.Conclusion, got.Error, got.FinishedAt)
	}
	if _, err := s.RunFile(ctx, r.ID, "result.json"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the earlier result is still served: %v", err)
	}
	js := must(s.Lease(ctx, "b", []string{"run-again"}, 1, time.Hour))
	if len(js) != 1 || js[0].Attempts != 1 {
		t.Fatalf("the rerun job leases as %+v, want its first attempt", js)
	}
	if _, err := s.Rerun(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rerun of a missing run = %v, want ErrNotFound", err)
	}
}

func testDaemonAddr(t *testing.T, db DB) {
	ctx := ctxT(t)
	a, b := db.Open(t), db.Open(t)
	if _, err := b.DaemonAddr(ctx, "host-a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("address of an unknown daemon: %v, want ErrNotFound", err)
	}
	check(t, a.SetDaemonAddr(ctx, "host-a", "http://10.0.0.1:8080"))
	check(t, a.SetDaemonAddr(ctx, "host-a", "http://10.0.0.2:8080"))
	if got := must(b.DaemonAddr(ctx, "host-a")); got != "http://10.0.0.2:8080" {
		t.Fatalf("address seen by the other store = %q, want the latest one recorded", got)
	}
	if err := a.SetDaemonAddr(ctx, "", "http://x"); err == nil {
		t.Fatal("an empty owner was recorded")
	}
}
