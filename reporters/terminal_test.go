package reporters

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/internal/syncbuf"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

// hostile is what an agent prints to take over the terminal: an OSC 52 clipboard write, a
// screen clear, a one-byte CSI and a bidi override.
const hostile = "\x1b]52;c;aGk=\a\x1b[2J\u009b31m\u202e"

// fakeClock is a clock a test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func instance(agent, id string) *plan.Instance {
	return &plan.Instance{ID: id, Agent: agent, Image: "img"}
}

// testTerminal is a Terminal on a buffer with a fake clock and no redraw ticker.
func testTerminal(interactive bool, width int) (*Terminal, *bytes.Buffer, *fakeClock) {
	var buf bytes.Buffer
	clock := newFakeClock()
	t := NewTerminal(&buf, interactive)
	t.now, t.width, t.tick = clock.now, func() int { return width }, 0
	return t, &buf, clock
}

func runInfo(nodes ...*plan.Node) *RunInfo {
	return &RunInfo{ID: "r1", Plan: &plan.Run{Routine: "fix", SHA: "0123456789abcdef", Nodes: nodes}}
}

func report(t *testing.T, r Reporter, info *RunInfo, at time.Time, us ...Update) {
	t.Helper()
	for _, u := range us {
		u.Run = info
		if u.Time.IsZero() {
			u.Time = at
		}
		if err := r.Report(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
}

func assertNoControls(t *testing.T, out string) {
	t.Helper()
	for _, bad := range []string{"\x1b", "\a", "\u009b", "\x9b", "\u202e"} {
		if strings.Contains(out, bad) {
			t.Errorf("terminal output carries %q raw:\n%q", bad, out)
		}
	}
}

func TestTerminalEscapesEverythingAnAgentControls(t *testing.T) {
	t.Parallel()
	term, buf, clock := testTerminal(false, 80)
	job := "audit[" + hostile + "]" // a matrix value from an agent's outputs
	info := runInfo(&plan.Node{Agent: "audit", Instances: []*plan.Instance{instance("audit", job)}})
	failed := &result.Job{ID: job, Agent: "audit", Outcome: result.Failed, ExitCode: 3,
		Error: "claude reported an error: " + hostile, Blocked: []string{"evil.example" + hostile},
		LogTail: "fine\n" + hostile + "\n", LogPath: "/runs/r1/jobs/audit/log.txt",
		Started: clock.t, Finished: clock.t.Add(time.Second)}
	res := &result.Run{ID: "r1", Routine: "fix", Conclusion: result.ConclusionFailure, Jobs: []*result.Job{failed},
		Conflicts: []result.Conflict{{Job: job, Files: []string{"a\x1b[2J.go"}}}, Error: "merge: " + hostile,
		Files: []result.FileChange{{Path: "x"}}}
	report(t, term, info, clock.t,
		Update{Kind: RunQueued},
		Update{Kind: JobStarted, Instance: info.Plan.Nodes[0].Instances[0]},
		Update{Kind: JobLog, Instance: info.Plan.Nodes[0].Instances[0], Line: hostile},
		Update{Kind: JobFinished, Job: failed},
		Update{Kind: RunFinished, Result: res})
	out := buf.String()
	assertNoControls(t, out)
	for _, want := range []string{`\x1b]52;c;aGk=\x07\x1b[2J\u009b31m\u202e`, `a\x1b[2J.go`, "1 file changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestTerminalPlainStreamsLinesPrefixedWithTheJob(t *testing.T) {
	t.Parallel()
	term, buf, clock := testTerminal(false, 80)
	a, b := instance("audit", "audit[api]"), instance("audit", "audit[web-frontend]")
	info := runInfo(&plan.Node{Agent: "audit", Instances: []*plan.Instance{a, b}})
	report(t, term, info, clock.t,
		Update{Kind: RunQueued},
		Update{Kind: JobLog, Instance: a, Line: "tick 1"},
		Update{Kind: JobLog, Instance: b, Line: "tick 1"},
		Update{Kind: JobLog, Instance: a, Line: "tick\t2"})
	want := "audit[api]          | tick 1\naudit[web-frontend] | tick 1\naudit[api]          | tick\t2\n"
	if got := buf.String(); !strings.HasSuffix(got, want) || !strings.HasPrefix(got, "run                   r1 fix at 0123456789ab: 1 agent\n") {
		t.Errorf("plain output:\n%s\nwant it to start with the run line and end with:\n%s", got, want)
	}
}

// lastBlock is the live view as last drawn: the rows after the last cursor-up.
func lastBlock(out string) []string {
	if i := strings.LastIndex(out, "A\x1b[2K"); i >= 0 {
		out = out[i+1:]
	}
	var rows []string
	for _, r := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		rows = append(rows, strings.TrimPrefix(r, "\x1b[2K"))
	}
	return rows
}

func TestTerminalLiveViewShowsLatestLineAndElapsedTime(t *testing.T) {
	t.Parallel()
	term, buf, clock := testTerminal(true, 60)
	audit, lint := instance("audit", "audit"), instance("lint", "lint")
	info := runInfo(&plan.Node{Agent: "audit", Instances: []*plan.Instance{audit}}, &plan.Node{Agent: "lint", Instances: []*plan.Instance{lint}})
	report(t, term, info, clock.t, Update{Kind: RunQueued}, Update{Kind: AgentExpanded, Agent: "audit", Instances: []*plan.Instance{audit}},
		Update{Kind: JobStarted, Instance: audit})
	clock.add(65 * time.Second)
	report(t, term, info, clock.t, Update{Kind: JobLog, Instance: audit, Line: "checking " + hostile + strings.Repeat(" very long", 20)})
	rows := lastBlock(buf.String())
	if len(rows) != 2 {
		t.Fatalf("want one row per agent, got %q", rows)
	}
	if !strings.HasPrefix(rows[0], "audit     0/1  running 1  1m05s  checking \\x1b]52") {
		t.Errorf("audit's row = %q, want its counts, elapsed time and latest line", rows[0])
	}
	if n := cells(rows[0]); n > 59 || !strings.HasSuffix(rows[0], "…") {
		t.Errorf("audit's row is %d cells (%q), want it clipped to the width 60 less one", n, rows[0])
	}
	if rows[1] != "lint      0/1  waiting" {
		t.Errorf("lint's row = %q", rows[1])
	}

	// Lines faster than ten a second are drawn at most ten times a second.
	before := strings.Count(buf.String(), "\x1b[2K")
	for i := range 50 {
		clock.add(10 * time.Millisecond)
		report(t, term, info, clock.t, Update{Kind: JobLog, Instance: audit, Line: fmt.Sprint("line ", i)})
	}
	if draws := (strings.Count(buf.String(), "\x1b[2K") - before) / 2; draws > 5 {
		t.Errorf("%d redraws for 50 lines over 0.5s, want at most 5", draws)
	}
	// The redraw that follows shows the last line, not the last one drawn.
	clock.add(time.Second)
	term.mu.Lock()
	term.draw(false)
	term.mu.Unlock()
	if rows := lastBlock(buf.String()); !strings.HasSuffix(rows[0], "1m06s  line 49") {
		t.Errorf("after the redraw audit's row = %q, want line 49", rows[0])
	}
	assertNoControls(t, strings.NewReplacer("\x1b[2K", "", "\x1b[2A", "").Replace(buf.String()))
}

func TestTerminalShowsTheLastTwentyLinesOfAFailedJob(t *testing.T) {
	t.Parallel()
	term, buf, clock := testTerminal(false, 80)
	term.RunDir = ".agents/.runs/r1"
	var log strings.Builder
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&log, "line %d\n", i)
	}
	boom := &result.Job{ID: "boom", Agent: "boom", Outcome: result.Failed, ExitCode: 3, LogTail: log.String(),
		LogPath: "/abs/r1/jobs/boom/log.txt", Started: clock.t, Finished: clock.t}
	ok := &result.Job{ID: "ok", Agent: "ok", Outcome: result.Success, LogTail: "all good\n", Started: clock.t, Finished: clock.t}
	report(t, term, runInfo(), clock.t, Update{Kind: RunFinished, Result: &result.Run{Routine: "fix", Jobs: []*result.Job{boom, ok}}})
	out := buf.String()
	head := "boom failed; the last 20 lines of .agents/.runs/r1/jobs/boom/log.txt:\n"
	i := strings.Index(out, head)
	if i < 0 {
		t.Fatalf("no log tail for boom:\n%s", out)
	}
	var want strings.Builder
	for n := 11; n <= 30; n++ {
		fmt.Fprintf(&want, "  | line %d\n", n)
	}
	if got := out[i+len(head):]; !strings.HasPrefix(got, want.String()) || strings.Contains(out, "line 10\n") || strings.Contains(out, "all good") {
		t.Errorf("the tail is not exactly lines 11-30 of boom:\n%s", out)
	}
}

// The live view redraws by itself, so that a line that came right after a redraw is shown
// and the timers move, and stops doing so when the run has finished.
func TestTerminalLiveViewRedrawsUntilTheRunFinishes(t *testing.T) {
	t.Parallel()
	var buf syncbuf.Buffer
	term := NewTerminal(&buf, true)
	term.tick = time.Millisecond
	audit := instance("audit", "audit")
	info := runInfo(&plan.Node{Agent: "audit", Instances: []*plan.Instance{audit}})
	report(t, term, info, time.Now(), Update{Kind: RunQueued}, Update{Kind: JobStarted, Instance: audit},
		Update{Kind: JobLog, Instance: audit, Line: "first"}, Update{Kind: JobLog, Instance: audit, Line: "second"})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "second") {
		if time.Now().After(deadline) {
			t.Fatalf("the line that came within the redraw interval was never drawn:\n%q", buf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	report(t, term, info, time.Now(), Update{Kind: RunFinished, Result: &result.Run{Routine: "fix"}})
	n := len(buf.String())
	time.Sleep(20 * time.Millisecond)
	if len(buf.String()) != n {
		t.Errorf("the view was redrawn after the run finished")
	}
}

// The summary shows what each job's workspace took on disk, and the run-wide notes (such as
// workspaces made as full checkouts, and why), escaped like everything else.
func TestTerminalSummaryShowsDiskUseAndNotes(t *testing.T) {
	t.Parallel()
	term, buf, clock := testTerminal(false, 80)
	term.Notes = []string{"workspaces are full checkouts, because " + hostile}
	big := &result.Job{ID: "big", Agent: "big", Outcome: result.Success, DiskUsage: 3 << 20, Started: clock.t, Finished: clock.t}
	none := &result.Job{ID: "none", Agent: "none", Outcome: result.Skipped}
	report(t, term, runInfo(), clock.t, Update{Kind: RunFinished, Result: &result.Run{Routine: "fix", Jobs: []*result.Job{big, none}}})
	out := buf.String()
	rows := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = line
		}
	}
	if !strings.Contains(rows["AGENT"], "DISK") || !strings.Contains(rows["big"], " 3m ") || !strings.Contains(rows["none"], "–") {
		t.Errorf("the table lacks the disk use:\n%s", out)
	}
	if !strings.Contains(out, "  note: workspaces are full checkouts, because ") {
		t.Errorf("the summary lacks the note:\n%s", out)
	}
	assertNoControls(t, out)
}
