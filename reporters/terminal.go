package reporters

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/agentrunner/agentrunner/internal/english"
	"github.com/agentrunner/agentrunner/internal/termsafe"
	"github.com/agentrunner/agentrunner/runner/result"
)

// Terminal shows a run to a person. On a terminal it keeps a compact view with one line per
// agent (`audit  37/120  running 8  failed 2  1m05s  audit[3]: checking api/`), redrawn in
// place with each running agent's latest line and elapsed time. Otherwise, or with Plain, it
// prints one line per event and every line the agents print, prefixed with the job's name as
// `docker compose up` does. At the end it prints a summary table and the last lines of each
// failed job's log.
//
// Everything it prints that an agent, a repository or an event controls goes through
// termsafe, so no escape sequence an agent prints reaches the person's terminal.
type Terminal struct {
	w     io.Writer
	plain bool
	// RunDir, when set, is named at the end as where the results are.
	RunDir string
	// Notes are said at the end, after the table: what the runner decided for the whole run
	// that a person should know (workspaces made as full checkouts, and why).
	Notes []string

	// now is the clock and width the terminal's width in cells; tests swap them.
	now   func() time.Time
	width func() int
	// tick is how often the live view redraws by itself so that its timers move; 0 never.
	tick time.Duration

	mu        sync.Mutex
	order     []string
	agents    map[string]*agentProgress
	nameWidth int // plain: the name column, as wide as the longest name seen
	drawn     int
	lastDraw  time.Time
	dirty     bool // something changed that the live view has not drawn yet
	stop      chan struct{}
}

type agentProgress struct {
	total, running, done int
	outcomes             map[result.Outcome]int
	state                string // waiting, running, or the agent's result
	started, finished    time.Time
	// latest is the last line one of the agent's jobs printed, escaped; latestJob is the job.
	latest, latestJob string
}

// NewTerminal returns a terminal reporter writing to w. interactive selects the redrawn
// view; it is false for pipes, CI logs and `--progress plain`.
func NewTerminal(w io.Writer, interactive bool) *Terminal {
	return &Terminal{w: w, plain: !interactive, agents: map[string]*agentProgress{},
		now: time.Now, width: func() int { return widthOf(w) }, tick: 100 * time.Millisecond}
}

// FollowLogs implements LogFollower: the terminal shows what agents print.
func (t *Terminal) FollowLogs() bool { return true }

// Report implements Reporter.
func (t *Terminal) Report(_ context.Context, u Update) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch u.Kind {
	case RunQueued:
		t.nameWidth = len("run")
		for _, n := range u.Run.Plan.Nodes {
			t.order = append(t.order, n.Agent)
			t.agents[n.Agent] = &agentProgress{total: len(n.Instances), outcomes: map[result.Outcome]int{}, state: "waiting"}
			t.widen(n.Agent)
			for _, in := range n.Instances {
				t.widen(in.ID)
			}
		}
		if t.plain {
			t.line("run", "%s %s at %s: %s", u.Run.ID, u.Run.Plan.Routine, short(u.Run.Plan.SHA), english.Count(len(u.Run.Plan.Nodes), "agent"))
		} else if t.tick > 0 {
			t.stop = make(chan struct{})
			go t.redrawEvery(t.tick, t.stop)
		}
	case AgentExpanded:
		a := t.agent(u.Agent)
		a.total, a.state = len(u.Instances), "running"
		for _, in := range u.Instances {
			t.widen(in.ID)
		}
		if t.plain && len(u.Instances) > 1 {
			t.line(u.Agent, "fans out to %s", english.Count(len(u.Instances), "job"))
		}
	case JobStarted:
		a := t.agent(u.Instance.Agent)
		a.running++
		if a.started.IsZero() {
			a.started = u.Time
		}
		if t.plain {
			t.line(u.Instance.ID, "started (%s)", u.Instance.Image)
		}
	case JobLog:
		a := t.agent(u.Instance.Agent)
		a.latest, a.latestJob = termsafe.Line(u.Line), termsafe.Line(u.Instance.ID)
		if t.plain {
			fmt.Fprintf(t.w, "%-*s | %s\n", t.nameWidth, a.latestJob, a.latest)
		}
	case JobFinished:
		a := t.agent(u.Job.Agent)
		if u.Job.Outcome != result.Cancelled || !u.Job.Started.IsZero() {
			a.running = max(0, a.running-1)
		}
		a.done++
		a.outcomes[u.Job.Outcome]++
		if t.plain {
			msg := fmt.Sprintf("%s in %s", u.Job.Outcome, u.Job.Duration().Round(time.Millisecond))
			if u.Job.Outcome == result.Failed {
				msg += fmt.Sprintf(" (exit %d)", u.Job.ExitCode)
			}
			if u.Job.Error != "" {
				msg += ": " + u.Job.Error
			}
			t.line(u.Job.ID, "%s", msg)
		}
	case AgentFinished:
		a := t.agent(u.Agent)
		a.state, a.running, a.finished = u.AgentRes.Result, 0, u.Time
		if t.plain {
			t.line(u.Agent, "%s (%s)", u.AgentRes.Result, progressCounts(a))
		}
	case RunFinished:
		if !t.plain {
			if t.stop != nil {
				close(t.stop)
				t.stop = nil
			}
			t.draw(true)
		}
		t.summary(u.Result, u.Run.Plan)
		return nil
	}
	if !t.plain {
		t.draw(false)
	}
	return nil
}

func (t *Terminal) agent(name string) *agentProgress {
	a, ok := t.agents[name]
	if !ok {
		a = &agentProgress{outcomes: map[result.Outcome]int{}}
		t.agents[name] = a
		t.order = append(t.order, name)
	}
	return a
}

// widen makes the plain view's name column fit name, as `docker compose up` pads its prefixes.
func (t *Terminal) widen(name string) {
	t.nameWidth = max(t.nameWidth, len([]rune(termsafe.Line(name))))
}

// line prints one event in the plain view; who and the message are escaped whole, as either
// may hold an agent's text (a job id from its outputs, an error it caused).
func (t *Terminal) line(who, format string, args ...any) {
	fmt.Fprintf(t.w, "%-*s   %s\n", t.nameWidth, termsafe.Line(who), termsafe.Line(fmt.Sprintf(format, args...)))
}

// widthOf is the width of the terminal w writes to, 80 when it cannot be told.
func widthOf(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 0 {
			return cols
		}
	}
	return 80
}
