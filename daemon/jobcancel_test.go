package daemon_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// Cancelling one job on another daemon of the fleet stops it through the store while the
// daemon running it lets its sibling finish: the job ends cancelled with the reason, its
// dependent is skipped as after a failure, an always() dependent runs, and the run concludes.
// A finished job, an unknown job and an unknown run are refused with 409, 404 and 404.
func TestCancelOneJobFromAnotherDaemon(t *testing.T) {
	repoDir, _ := gittest.Repo(t, map[string]string{".agents/pair.yaml": `name: pair
on: {dispatch: {}}
agents:
  slow: {image: x, command: [x], env: {AGENTRUNNER_FAKE_SLEEP: 1h}}
  quick: {image: x, command: [x]}
  after: {image: x, command: [x], needs: [slow]}
  cleanup: {image: x, command: [x], needs: [slow], if: always()}
`})
	repos, err := daemon.NewRepos([]daemon.Repo{{Name: "acme/app", URL: repoDir, DefaultBranch: "main"}})
	if err != nil {
		t.Fatal(err)
	}
	db := storetest.SQLite(t)
	start := func(owner string) *daemon.Daemon {
		return fleetMember(t, db.Open(t), owner, daemon.FakeSandbox{}, repos, nil)
	}
	st := db.Open(t)
	a := start("daemon-a")
	disp, err := a.Dispatch(t.Context(), "acme/app", "pair", nil)
	if err != nil {
		t.Fatal(err)
	}
	id := disp.RunID
	state := func(job string) string {
		js, _ := st.RunJobs(t.Context(), id)
		for _, j := range js {
			if j.Job == job {
				return j.State
			}
		}
		return ""
	}
	waitUntil(t, "slow to run and quick to finish", func() bool {
		return state("slow") == store.RunJobRunning && state("quick") == store.RunJobFinished
	})
	// Daemon B starts after A took the run: it never holds it.
	b := start("daemon-b")
	wantStatus := func(err error, code int, text string) {
		t.Helper()
		var re *daemon.RequestError
		if !errors.As(err, &re) || re.Status != code || !strings.Contains(err.Error(), text) {
			t.Errorf("got %v, want %d saying %q", err, code, text)
		}
	}
	_, err = b.CancelJob(t.Context(), id, "quick", "late")
	wantStatus(err, http.StatusConflict, "has already finished")
	_, err = b.CancelJob(t.Context(), id, "nope", "x")
	wantStatus(err, http.StatusNotFound, `has no job "nope"`)
	_, err = b.CancelJob(t.Context(), "r-none", "slow", "x")
	wantStatus(err, http.StatusNotFound, "no run r-none")

	asked := time.Now()
	res, err := b.CancelJob(t.Context(), id, "slow", "enough of it")
	if err != nil || res.Stopped || res.State != store.RunJobRunning {
		t.Fatalf("cancel on daemon B = %+v, %v; want the request recorded for the job running on A", res, err)
	}
	waitUntil(t, "the run to conclude", func() bool {
		r, _ := st.GetRun(t.Context(), id)
		return r.Status == store.RunCompleted
	})
	if r, _ := st.GetRun(t.Context(), id); r.Conclusion != "cancelled" || !strings.Contains(r.Error, "job slow: cancelled") || !strings.Contains(r.Error, "enough of it") {
		t.Errorf("run %s %q, want cancelled, naming the job and the reason", r.Conclusion, r.Error)
	}
	if took := time.Since(asked); took > 10*time.Second {
		t.Errorf("the run took %s to end after the cancel", took)
	}
	b2, err := st.RunFile(t.Context(), id, "result.json")
	if err != nil {
		t.Fatal(err)
	}
	var out result.Run
	if err := json.Unmarshal(b2, &out); err != nil {
		t.Fatal(err)
	}
	want := map[string]result.Outcome{"slow": result.Cancelled, "quick": result.Success, "cleanup": result.Success}
	for _, j := range out.Jobs {
		if w, ok := want[j.ID]; ok && j.Outcome != w {
			t.Errorf("job %s: %s %q, want %s", j.ID, j.Outcome, j.Error, w)
		}
		if j.ID == "slow" && !strings.Contains(j.Error, "enough of it") {
			t.Errorf("the cancelled job's error %q does not give the reason", j.Error)
		}
		delete(want, j.ID)
	}
	if len(want) != 0 {
		t.Errorf("jobs missing from the result: %v", want)
	}
	agents := map[string]string{}
	for _, ag := range out.Agents {
		agents[ag.Name] = ag.Result
	}
	if agents["slow"] != "cancelled" || agents["after"] != "skipped" || agents["cleanup"] != "success" || agents["quick"] != "success" {
		t.Errorf("agents %v: want slow cancelled, after skipped, cleanup and quick successes", agents)
	}
	_, err = a.CancelJob(t.Context(), id, "quick", "x")
	wantStatus(err, http.StatusConflict, "already completed")
}
