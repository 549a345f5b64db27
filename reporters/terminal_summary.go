package reporters

import (
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/internal/english"
	"github.com/agentrunner/agentrunner/internal/termsafe"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

const (
	// failureTailLines is how much of a failed job's log the summary shows.
	failureTailLines = 20
	// failureTailsShown bounds the failed jobs whose logs are shown, for a large fan-out.
	failureTailsShown = 5
	// tailLineCells bounds one line of a shown log, which may be a whole minified file.
	tailLineCells = 400
)

// summary prints one row per job and what a person must know about the run. Every string
// from the result is escaped: job ids may come from agents' outputs, errors and file names
// from what agents did.
func (t *Terminal) summary(r *result.Run, p *plan.Run) {
	esc := termsafe.Line
	fmt.Fprintln(t.w)
	tw := tabwriter.NewWriter(t.w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENT\tOUTCOME\tDURATION\tEXIT\tCHANGED\tDISK\tCOST")
	for _, j := range r.Jobs {
		disk := "–"
		if j.DiskUsage > 0 {
			disk = config.FormatSize(j.DiskUsage)
		}
		changed := "–"
		if j.Changes != nil && len(j.Changes.Files) > 0 {
			changed = english.Count(len(j.Changes.Files), "file")
		}
		cost := "–"
		if j.Usage.CostUSD > 0 {
			cost = fmt.Sprintf("$%.4f", j.Usage.CostUSD)
		}
		exit := "–"
		if j.Outcome != result.Skipped && j.Outcome != result.Error && !j.Started.IsZero() {
			exit = fmt.Sprint(j.ExitCode)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", esc(j.ID), j.Outcome, j.Duration().Round(time.Millisecond), exit, changed, disk, cost)
	}
	tw.Flush()
	for _, j := range r.Jobs {
		if j.Error != "" && j.Outcome != result.Success {
			fmt.Fprintf(t.w, "  %s: %s\n", esc(j.ID), esc(j.Error))
		}
		if len(j.Blocked) > 0 {
			fmt.Fprintf(t.w, "  %s: network refused %s\n", esc(j.ID), esc(strings.Join(j.Blocked, ", ")))
		}
	}
	if open := openNetwork(p); len(open) > 0 {
		fmt.Fprintf(t.w, "  network: open (full egress) for %s\n", esc(strings.Join(open, ", ")))
	}
	for _, c := range r.Conflicts {
		fmt.Fprintf(t.w, "  conflict: %s's changes to %s were left out\n", esc(c.Job), esc(strings.Join(c.Files, ", ")))
	}
	if r.Error != "" {
		fmt.Fprintf(t.w, "  error: %s\n", esc(r.Error))
	}
	for _, n := range t.Notes {
		fmt.Fprintf(t.w, "  note: %s\n", esc(n))
	}
	t.failureTails(r)
	if len(r.Files) > 0 {
		fmt.Fprintf(t.w, "\n%s changed in the combined patch.\n", english.Count(len(r.Files), "file"))
	}
	fmt.Fprintf(t.w, "\n%s: %s in %s", esc(r.Routine), r.Conclusion, r.Finished.Sub(r.Started).Round(time.Millisecond))
	if t.RunDir != "" {
		fmt.Fprintf(t.w, " · results in %s", esc(t.RunDir))
	}
	fmt.Fprintln(t.w)
}

// failureTails shows the end of each failed job's log (masked like log.txt, escaped), where
// the reason for a failure usually is.
func (t *Terminal) failureTails(r *result.Run) {
	shown, more := 0, 0
	for _, j := range r.Jobs {
		if !failedOutcome(j.Outcome) || strings.TrimSpace(j.LogTail) == "" {
			continue
		}
		if shown == failureTailsShown {
			more++
			continue
		}
		shown++
		lines := lastLines(j.LogTail, failureTailLines)
		fmt.Fprintf(t.w, "\n%s %s; the last %s of %s:\n", termsafe.Line(j.ID), j.Outcome,
			english.Count(len(lines), "line"), termsafe.Line(t.logPath(j)))
		for _, l := range lines {
			fmt.Fprintf(t.w, "  | %s\n", clip(termsafe.Line(l), tailLineCells))
		}
	}
	if more > 0 {
		fmt.Fprintf(t.w, "\n%s more failed; see the log.txt of each under %s\n", english.Count(more, "job"), termsafe.Line(t.jobsDir()))
	}
}

func failedOutcome(o result.Outcome) bool {
	switch o {
	case result.Failed, result.TimedOut, result.OOM, result.Error:
		return true
	}
	return false
}

// lastLines is the last n lines of a log, without the final line break.
func lastLines(log string, n int) []string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	return lines[max(0, len(lines)-n):]
}

// logPath names a job's log as a person finds it: under RunDir when it is set.
func (t *Terminal) logPath(j *result.Job) string {
	if t.RunDir == "" || j.LogPath == "" {
		return j.LogPath
	}
	return filepath.Join(t.jobsDir(), filepath.Base(filepath.Dir(j.LogPath)), filepath.Base(j.LogPath))
}

func (t *Terminal) jobsDir() string {
	if t.RunDir == "" {
		return "the run's jobs/ directory"
	}
	return filepath.Join(t.RunDir, "jobs")
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
