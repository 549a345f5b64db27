package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/internal/browsertest"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// Two daemons on one Postgres: the job page on daemon A follows, line by line as the agent
// prints, the log of a job that daemon B runs; its Cancel job button, pressed on A, stops the
// agent on B (its container goes) while the page stays where it is.
func TestJobLogFollowsLiveAcrossTheFleet(t *testing.T) {
	db := storetest.Postgres(t)
	files := map[string]string{
		"README.md":           "hello\n",
		".agents/ticker.yaml": agentRoutine("ticker", "/testagent", "tick", "1200", "500ms"),
	}
	b := startFleetDaemon(t, setup{files: files, database: db.DSN})
	tok := b.token("browser", "dispatch")
	run := b.dispatch(tok, "ticker")
	b.waitRun(tok, run, "running", 90*time.Second)
	// A starts after B has taken the run, so the job certainly runs on B.
	a := startFleetDaemon(t, setup{repo: b.repo, database: db.DSN})

	p := browsertest.New(t)
	signIn(t, p, a.URL, tok)
	p.Goto(a.URL + "/ui/runs/" + run + "/jobs/a")
	browsertest.Eval[int](p, `window.notReloaded = 1`)
	ticks := func() int { return strings.Count(p.Text("#log"), "tick ") }
	p.WaitFor("daemon A's job page to show B's agent printing", 60*time.Second, func() bool { return ticks() >= 3 })
	seen := ticks()
	p.WaitFor("the log to grow without a reload", 20*time.Second, func() bool { return ticks() >= seen+4 })
	if browsertest.Eval[int](p, `window.notReloaded || 0`) != 1 {
		t.Error("the job page reloaded to show more of the log; it should follow it in place")
	}
	if note := p.Text("#log-note"); !strings.Contains(note, "live") {
		t.Errorf("the log's note says %q, want that it follows live", note)
	}
	p.Screenshots("job-live")

	// The log is the agent's, in order, from its first line.
	lines := strings.Split(strings.TrimSpace(p.Text("#log")), "\n")
	if len(lines) == 0 || lines[0] != "tick 1" {
		t.Errorf("the followed log starts %q, want tick 1", lines[:min(len(lines), 3)])
	}
	for i, l := range lines {
		if want := "tick " + strconv.Itoa(i+1); l != want && i < len(lines)-1 {
			t.Fatalf("line %d of the followed log is %q, want %q (lines lost or repeated)", i+1, l, want)
		}
	}

	p.ClickAndWait(`form[action$="/cancel"] button[type=submit]`)
	done := b.waitRun(tok, run, "completed", 60*time.Second)
	if done.Conclusion == "success" {
		t.Errorf("the run concluded success after its only job was cancelled")
	}
	p.WaitFor("the agent's container on B to go", 30*time.Second, func() bool { return len(b.containers(run)) == 0 })
	p.Goto(a.URL + "/ui/runs/" + run + "/jobs/a")
	p.WaitText("main", "cancelled", 10*time.Second)
	p.Screenshots("job-cancelled")
}
