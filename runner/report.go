package runner

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/agentrunner/agentrunner/internal/english"
	"github.com/agentrunner/agentrunner/runner/result"
)

// Report renders a run as one markdown document: an overview table of agents, per-stage
// counts, votes, the consolidated changes and conflicts, then a section per job with its
// report (or the agent's final message). The check run and the pull request publish it.
func Report(r *result.Run) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s: %s\n\n", r.Routine, r.Conclusion)
	if r.SHA != "" {
		fmt.Fprintf(&b, "Commit `%s`", short(r.SHA))
		if d := r.Finished.Sub(r.Started); d > 0 {
			fmt.Fprintf(&b, " · %s", d.Round(time.Millisecond))
		}
		if u := r.Usage(); u.CostUSD > 0 {
			fmt.Fprintf(&b, " · $%.4f", u.CostUSD)
		}
		b.WriteString("\n\n")
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "> **Error:** %s\n\n", r.Error)
	}

	b.WriteString("| agent | result | jobs | duration | cost |\n|---|---|---|---|---|\n")
	for _, a := range r.Agents {
		var dur time.Duration
		var cost float64
		for _, id := range a.Jobs {
			if j := r.Job(id); j != nil {
				dur = max(dur, j.Duration())
				cost += j.Usage.CostUSD
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", a.Name, a.Result, counts(a), dur.Round(time.Millisecond), money(cost))
	}
	b.WriteString("\n")

	for _, a := range r.Agents {
		votes := a.Votes
		if a.Vote != nil {
			votes = append([]*result.Vote{a.Vote}, votes...)
		}
		for _, v := range votes {
			writeVote(&b, a.Name, v)
		}
	}

	writeWorkflows(&b, r)
	writeSpend(&b, r)

	var refused []string
	for _, j := range r.Jobs {
		if len(j.Blocked) > 0 {
			refused = append(refused, fmt.Sprintf("- **%s**: %s\n", j.ID, strings.Join(j.Blocked, ", ")))
		}
	}
	if len(refused) > 0 {
		b.WriteString("### Network\n\nThe egress proxy refused these destinations (add them to `network.allow` if the agent needs them):\n\n")
		b.WriteString(strings.Join(refused, ""))
		b.WriteString("\n")
	}

	if len(r.Files) > 0 {
		fmt.Fprintf(&b, "### Changes\n\n%s changed by %s.\n\n", english.Count(len(r.Files), "file"), strings.Join(r.Applied, ", "))
		for _, f := range r.Files {
			fmt.Fprintf(&b, "- `%s` (%s)\n", f.Path, f.Status)
		}
		b.WriteString("\n")
	}
	if len(r.Conflicts) > 0 {
		b.WriteString("### Conflicts\n\nThese agents' changes conflict with earlier ones and were left out:\n\n")
		for _, c := range r.Conflicts {
			fmt.Fprintf(&b, "- **%s**: %s\n", c.Job, strings.Join(c.Files, ", "))
		}
		b.WriteString("\n")
	}

	for _, j := range r.Jobs {
		text := j.Report
		if text == "" {
			text = j.Final
		}
		if text == "" && j.Error == "" {
			continue
		}
		fmt.Fprintf(&b, "### %s (%s)\n\n", j.ID, j.Outcome)
		if j.Error != "" {
			fmt.Fprintf(&b, "> %s\n\n", j.Error)
		}
		if text != "" {
			b.WriteString(strings.TrimSpace(text))
			b.WriteString("\n\n")
		}
	}
	return b.String()
}

// counts reads like "37/40 success, 3 failed".
func counts(a *result.Agent) string {
	total := len(a.Jobs)
	if total == 0 {
		return "0"
	}
	keys := make([]string, 0, len(a.Counts))
	for k := range a.Counts {
		if k != string(result.Success) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	s := fmt.Sprintf("%d/%d success", a.Counts[string(result.Success)], total)
	for _, k := range keys {
		if a.Counts[k] > 0 {
			s += fmt.Sprintf(", %d %s", a.Counts[k], k)
		}
	}
	return s
}

func money(c float64) string {
	if c == 0 {
		return "–"
	}
	return fmt.Sprintf("$%.4f", c)
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// writeVote says how an agent's replicas decided, and who dissented.
func writeVote(b *strings.Builder, agent string, v *result.Vote) {
	how := fmt.Sprintf("quorum %d on `%s`", v.Quorum, v.Key)
	if v.Judge != "" {
		how = "judged by " + v.Judge
	}
	if len(v.Matrix) > 0 {
		how += fmt.Sprintf(", matrix %v", v.Matrix)
	}
	if v.Reached {
		fmt.Fprintf(b, "**%s** (%s): accepted `%v` from %s.", agent, how, v.Winner, v.WinningJob)
	} else {
		fmt.Fprintf(b, "**%s** (%s): no quorum.", agent, how)
	}
	if len(v.Dissent) > 0 {
		fmt.Fprintf(b, " Dissent: %s.", strings.Join(v.Dissent, ", "))
	}
	b.WriteString("\n\n")
}

// writeWorkflows shows what orchestrators wrote: each refused attempt's problems, and the
// workflow that ran, collapsed.
func writeWorkflows(b *strings.Builder, r *result.Run) {
	var any bool
	for _, j := range r.Jobs {
		if j.WorkflowErrors == "" && j.Workflow == "" {
			continue
		}
		if !any {
			b.WriteString("### Workflows\n\n")
			any = true
		}
		if j.WorkflowErrors != "" {
			fmt.Fprintf(b, "The workflow **%s** wrote was refused:\n\n%s\n\n", j.ID, fenced("", j.WorkflowErrors))
		}
		if j.Workflow != "" {
			fmt.Fprintf(b, "<details><summary>The workflow %s wrote and the runner ran (%s)</summary>\n\n%s\n\n</details>\n\n",
				j.ID, english.Count(strings.Count(strings.TrimRight(j.Workflow, "\n"), "\n")+1, "line"), fenced("yaml", j.Workflow))
		}
	}
}

// fenced puts text in a code block whose fence is longer than any run of backticks in it, so
// an agent's text cannot close the block early.
func fenced(lang, text string) string {
	longest, run := 0, 0
	for _, c := range text {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", max(3, longest+1))
	return fence + lang + "\n" + strings.TrimRight(text, "\n") + "\n" + fence
}

// writeSpend shows what the proxy metered of the agents' model calls, next to what the agents
// themselves reported, and the budget that stopped the run.
func writeSpend(b *strings.Builder, r *result.Run) {
	var rows []string
	var total, budget float64
	var stopped []string
	for _, a := range r.Agents {
		var metered, reported float64
		var calls int
		seen := false
		for _, id := range a.Jobs {
			j := r.Job(id)
			if j == nil {
				continue
			}
			reported += j.Usage.CostUSD
			if m := j.Metered; m != nil {
				seen = true
				metered += m.USD
				calls += m.Calls
				budget = max(budget, m.Budget)
			}
			if j.Outcome == result.BudgetExceeded {
				stopped = append(stopped, j.ID)
			}
		}
		if !seen {
			continue
		}
		total += metered
		rows = append(rows, fmt.Sprintf("| %s | $%.4f | %d | %s |\n", a.Name, metered, calls, money(reported)))
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("### Spend\n\nModel calls as the egress proxy metered them from the APIs' usage (the agents' own account beside):\n\n")
	b.WriteString("| agent | metered | calls | agent-reported |\n|---|---|---|---|\n")
	b.WriteString(strings.Join(rows, ""))
	fmt.Fprintf(b, "\nIn all $%.4f", total)
	if budget > 0 {
		fmt.Fprintf(b, " of a $%.2f budget", budget)
	}
	b.WriteString(".")
	if len(stopped) > 0 {
		fmt.Fprintf(b, " The budget was spent: %s stopped with budget_exceeded.", strings.Join(stopped, ", "))
	}
	b.WriteString("\n\n")
}
