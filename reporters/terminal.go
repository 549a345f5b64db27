package reporters

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

// Terminal shows a run to a person: on a terminal a compact view with one line per agent
// (`audit  37/120  running 8  ✗ 2`) redrawn in place; otherwise, or with Plain, one
// prefixed line per event. At the end it prints a summary table.
type Terminal struct {
	w     io.Writer
	plain bool
	// RunDir, when set, is named at the end as where the results are.
	RunDir string

	mu       sync.Mutex
	order    []string
	agents   map[string]*agentProgress
	drawn    int
	lastDraw time.Time
	start    time.Time
}

type agentProgress struct {
	total, running, done int
	outcomes             map[result.Outcome]int
	state                string // waiting, running, or the agent's result
}

// NewTerminal returns a terminal reporter writing to w. interactive selects the redrawn
// view; it is false for pipes, CI logs and `--progress plain`.
func NewTerminal(w io.Writer, interactive bool) *Terminal {
	return &Terminal{w: w, plain: !interactive, agents: map[string]*agentProgress{}}
}

// Report implements Reporter.
func (t *Terminal) Report(_ context.Context, u Update) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch u.Kind {
	case RunQueued:
		t.start = u.Time
		for _, n := range u.Run.Plan.Nodes {
			t.order = append(t.order, n.Agent)
			t.agents[n.Agent] = &agentProgress{total: len(n.Instances), outcomes: map[result.Outcome]int{}, state: "waiting"}
		}
		if t.plain {
			t.line("run", "%s %s at %s: %d agents", u.Run.ID, u.Run.Plan.Routine, short(u.Run.Plan.SHA), len(u.Run.Plan.Nodes))
		}
	case AgentExpanded:
		a := t.agent(u.Agent)
		a.total, a.state = len(u.Instances), "running"
		if t.plain && len(u.Instances) > 1 {
			t.line(u.Agent, "fans out to %d jobs", len(u.Instances))
		}
	case JobStarted:
		a := t.agent(u.Instance.Agent)
		a.running++
		if t.plain {
			t.line(u.Instance.ID, "started (%s)", u.Instance.Image)
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
		a.state, a.running = u.AgentRes.Result, 0
		if t.plain {
			t.line(u.Agent, "%s (%s)", u.AgentRes.Result, progressCounts(a))
		}
	case RunFinished:
		if !t.plain {
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

func (t *Terminal) line(who, format string, args ...any) {
	fmt.Fprintf(t.w, "%-20s %s\n", who, fmt.Sprintf(format, args...))
}

// draw redraws the per-agent block in place, at most ten times a second unless forced.
func (t *Terminal) draw(force bool) {
	if !force && time.Since(t.lastDraw) < 100*time.Millisecond {
		return
	}
	t.lastDraw = time.Now()
	var b strings.Builder
	if t.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", t.drawn)
	}
	width := 8
	for _, name := range t.order {
		width = max(width, len(name))
	}
	for _, name := range t.order {
		a := t.agents[name]
		fmt.Fprintf(&b, "\x1b[2K%-*s  %s\n", width, name, progressCounts(a))
	}
	t.drawn = len(t.order)
	io.WriteString(t.w, b.String())
}

func progressCounts(a *agentProgress) string {
	s := fmt.Sprintf("%d/%d", a.done, a.total)
	if a.running > 0 {
		s += fmt.Sprintf("  running %d", a.running)
	} else if a.done < a.total || a.state != "running" {
		s += "  " + a.state
	}
	keys := make([]string, 0, len(a.outcomes))
	for o := range a.outcomes {
		keys = append(keys, string(o))
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != string(result.Success) {
			s += fmt.Sprintf("  %s %d", k, a.outcomes[result.Outcome(k)])
		}
	}
	return s
}

// summary prints one row per job and what a person must know about the run.
func (t *Terminal) summary(r *result.Run, p *plan.Run) {
	fmt.Fprintln(t.w)
	tw := tabwriter.NewWriter(t.w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tOUTCOME\tDURATION\tEXIT\tCHANGED\tCOST")
	for _, j := range r.Jobs {
		changed := "–"
		if j.Changes != nil && len(j.Changes.Files) > 0 {
			changed = fmt.Sprintf("%d files", len(j.Changes.Files))
		}
		cost := "–"
		if j.Usage.CostUSD > 0 {
			cost = fmt.Sprintf("$%.4f", j.Usage.CostUSD)
		}
		exit := "–"
		if j.Outcome != result.Skipped && j.Outcome != result.Error && !j.Started.IsZero() {
			exit = fmt.Sprint(j.ExitCode)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Outcome, j.Duration().Round(time.Millisecond), exit, changed, cost)
	}
	tw.Flush()
	for _, j := range r.Jobs {
		if j.Error != "" && j.Outcome != result.Success {
			fmt.Fprintf(t.w, "  %s: %s\n", j.ID, j.Error)
		}
		if len(j.Blocked) > 0 {
			fmt.Fprintf(t.w, "  %s: network refused %s\n", j.ID, strings.Join(j.Blocked, ", "))
		}
	}
	if open := openNetwork(p); len(open) > 0 {
		fmt.Fprintf(t.w, "  network: open (full egress) for %s\n", strings.Join(open, ", "))
	}
	for _, c := range r.Conflicts {
		fmt.Fprintf(t.w, "  conflict: %s's changes to %s were left out\n", c.Job, strings.Join(c.Files, ", "))
	}
	if r.Error != "" {
		fmt.Fprintf(t.w, "  error: %s\n", r.Error)
	}
	if len(r.Files) > 0 {
		fmt.Fprintf(t.w, "\n%d files changed in the combined patch.\n", len(r.Files))
	}
	fmt.Fprintf(t.w, "\n%s: %s in %s", r.Routine, r.Conclusion, r.Finished.Sub(r.Started).Round(time.Millisecond))
	if t.RunDir != "" {
		fmt.Fprintf(t.w, " · results in %s", t.RunDir)
	}
	fmt.Fprintln(t.w)
}

// openNetwork names the agents that run with full egress, which a reader should notice.
func openNetwork(p *plan.Run) []string {
	if p == nil {
		return nil
	}
	var out []string
	for _, n := range p.Nodes {
		for _, in := range n.Instances {
			if in.Network.Mode == "open" {
				out = append(out, n.Agent)
				break
			}
		}
	}
	return out
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
