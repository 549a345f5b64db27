package storetest

import (
	"testing"

	"github.com/agentrunner/agentrunner/store"
)

// testRerunOf covers the re-run's link to its original: it is stored, read back and listed.
func testRerunOf(t *testing.T, db DB) {
	s := db.Open(t)
	ctx := ctxT(t)
	orig, _, err := s.CreateRun(ctx, store.Run{ID: "orig", Repo: "o/r", Routine: "x", SHA: "abc", DeliveryID: "d1"})
	check(t, err)
	again, created, err := s.CreateRun(ctx, store.Run{ID: "again", Repo: "o/r", Routine: "x", SHA: "abc", DeliveryID: "d1", RerunOf: orig.ID})
	check(t, err)
	if !created || again.RerunOf != orig.ID {
		t.Fatalf("created re-run = %+v (created %v), want rerun_of %s", again, created, orig.ID)
	}
	if got := must(s.GetRun(ctx, "again")); got.RerunOf != "orig" {
		t.Errorf("GetRun rerun_of = %q, want orig", got.RerunOf)
	}
	if got := must(s.GetRun(ctx, "orig")); got.RerunOf != "" {
		t.Errorf("the original's rerun_of = %q, want empty", got.RerunOf)
	}
	listed := map[string]string{}
	for _, r := range must(s.ListRuns(ctx, store.RunFilter{DeliveryID: "d1"})) {
		listed[r.ID] = r.RerunOf
	}
	if len(listed) != 2 || listed["again"] != "orig" || listed["orig"] != "" {
		t.Errorf("ListRuns rerun_of = %v, want again → orig", listed)
	}
}

// testRunJobCancel covers the per-job cancel requests: recorded for a running or not yet
// started job, seen by another store on the same database, kept once made, refused (the record
// unchanged) for a finished job; the job's later states keep the request.
func testRunJobCancel(t *testing.T, db DB) {
	a, b := db.Open(t), db.Open(t)
	ctx := ctxT(t)
	check(t, a.SetRunJobState(ctx, "r1", "build", store.RunJobRunning))
	check(t, a.SetRunJobState(ctx, "r1", "lint", store.RunJobRunning))
	check(t, a.SetRunJobState(ctx, "r1", "lint", store.RunJobFinished))

	j := must(b.CancelRunJob(ctx, "r1", "build", "too slow"))
	if !j.Cancelled() || j.CancelReason != "too slow" || j.State != store.RunJobRunning {
		t.Errorf("cancel of a running job = %+v, want the request recorded, still running", j)
	}
	// A second request keeps the first one's reason.
	if j := must(b.CancelRunJob(ctx, "r1", "build", "again")); j.CancelReason != "too slow" {
		t.Errorf("a second cancel changed the reason to %q", j.CancelReason)
	}
	if j := must(b.CancelRunJob(ctx, "r1", "lint", "late")); j.Cancelled() || j.State != store.RunJobFinished {
		t.Errorf("cancel of a finished job = %+v, want it finished and not cancelled", j)
	}
	if j := must(b.CancelRunJob(ctx, "r1", "docs", "not yet started")); !j.Cancelled() || j.State != store.RunJobPending {
		t.Errorf("cancel of a job not started = %+v, want a pending request", j)
	}
	// The worker marks the job finished: the request stays for everyone to read.
	check(t, a.SetRunJobState(ctx, "r1", "build", store.RunJobFinished))
	got := map[string]store.RunJob{}
	for _, j := range must(a.RunJobs(ctx, "r1")) {
		got[j.Job] = j
	}
	if len(got) != 3 || !got["build"].Cancelled() || got["build"].State != store.RunJobFinished || got["lint"].Cancelled() || !got["docs"].Cancelled() {
		t.Errorf("RunJobs = %+v", got)
	}
	if js := must(a.RunJobs(ctx, "other")); len(js) != 0 {
		t.Errorf("RunJobs of another run = %+v, want none", js)
	}
}
