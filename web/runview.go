package web

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/web/render"
)

// stage is one agent of a run page: its instances (fan-out and replicas), their votes, and
// whom it judges.
type stage struct {
	Name   string
	Result string // as needs.<agent>.result shows it; "" while the run goes on
	// JudgeOf names the agents whose replicas this agent judges.
	JudgeOf         []string
	ContinueOnError bool
	Jobs            []jobRow
	Votes           []voteRow
}

// jobRow is one job of a stage, its text made safe to show (render.Visible).
type jobRow struct {
	ID, Href string
	Matrix   string
	Replica  int
	Status   string // the outcome, or pending/running while the run goes on
	Duration string
	Cost     string
	Tokens   string
	Error    string
	Blocked  []string
	// Winner says this replica's outputs and changes stand for its agent.
	Winner bool
}

type voteRow struct {
	Key, Matrix, Winner, Tally, Dissent, Judge, WinningJob string
	Quorum                                                 int
	Reached                                                bool
}

// stagesFromResult lists a finished run's agents in the result's order.
func stagesFromResult(runID string, res *result.Run) []stage {
	judges := map[string][]string{}
	winners := map[string]bool{}
	for _, a := range res.Agents {
		for _, v := range agentVotes(a) {
			if v.Judge != "" {
				judges[v.Judge] = appendOnce(judges[v.Judge], a.Name)
			}
			if v.WinningJob != "" {
				winners[v.WinningJob] = true
			}
		}
	}
	var out []stage
	for _, a := range res.Agents {
		if a == nil {
			continue
		}
		s := stage{Name: render.Visible(a.Name), Result: render.Visible(a.Result), JudgeOf: judges[a.Name], ContinueOnError: a.ContinueOnError}
		for _, id := range a.Jobs {
			j := res.Job(id)
			if j == nil {
				s.Jobs = append(s.Jobs, jobRow{ID: render.Visible(id), Href: jobHref(runID, id), Status: "unknown"})
				continue
			}
			row := finishedJobRow(runID, j)
			row.Winner = winners[j.ID]
			s.Jobs = append(s.Jobs, row)
		}
		for _, v := range agentVotes(a) {
			s.Votes = append(s.Votes, voteView(v))
		}
		out = append(out, s)
	}
	return out
}

func agentVotes(a *result.Agent) []*result.Vote {
	if a == nil {
		return nil
	}
	var out []*result.Vote
	if a.Vote != nil {
		out = append(out, a.Vote)
	}
	for _, v := range a.Votes {
		if v != nil {
			out = append(out, v)
		}
	}
	return out
}

func finishedJobRow(runID string, j *result.Job) jobRow {
	row := jobRow{ID: render.Visible(j.ID), Href: jobHref(runID, j.ID), Matrix: matrixText(j.Matrix), Replica: j.Replica,
		Status: render.Visible(string(j.Outcome)), Duration: durationText(j.Duration()),
		Cost: costText(j.Usage.CostUSD), Tokens: tokensText(j.Usage), Error: render.Visible(j.Error)}
	for _, b := range j.Blocked {
		row.Blocked = append(row.Blocked, render.Visible(b))
	}
	return row
}

// stagesFromPlan lists a run's agents from its plan while it has no result: each instance is
// pending, or running once it has started (running reports whether it has).
func stagesFromPlan(runID string, pl *plan.Run, running func(job string) bool) []stage {
	judges := map[string][]string{}
	for _, n := range pl.Nodes {
		if n != nil && n.Judge != "" {
			judges[n.Judge] = appendOnce(judges[n.Judge], n.Agent)
		}
	}
	var out []stage
	for _, n := range pl.Nodes {
		if n == nil {
			continue
		}
		s := stage{Name: render.Visible(n.Agent), JudgeOf: judges[n.Agent], ContinueOnError: n.ContinueOnError}
		for _, in := range n.Instances {
			if in == nil {
				continue
			}
			st := "pending"
			if running(in.ID) {
				st = "running"
			}
			s.Jobs = append(s.Jobs, jobRow{ID: render.Visible(in.ID), Href: jobHref(runID, in.ID), Matrix: matrixText(in.Matrix), Replica: in.Replica, Status: st})
		}
		out = append(out, s)
	}
	return out
}

func voteView(v *result.Vote) voteRow {
	row := voteRow{Key: render.Visible(v.Key), Matrix: matrixText(v.Matrix), Quorum: v.Quorum, Reached: v.Reached,
		Judge: render.Visible(v.Judge), WinningJob: render.Visible(v.WinningJob), Dissent: render.Visible(strings.Join(v.Dissent, ", "))}
	if v.Winner != nil {
		row.Winner = valueText(v.Winner)
	}
	var tally []string
	for k, n := range v.Tally {
		tally = append(tally, render.Visible(k)+": "+strconv.Itoa(n))
	}
	sort.Strings(tally)
	row.Tally = strings.Join(tally, ", ")
	return row
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, render.Visible(s))
}

func jobHref(runID, job string) string {
	return "/ui/runs/" + url.PathEscape(runID) + "/jobs/" + url.PathEscape(job)
}

// matrixText shows a matrix combination as "os=linux, svc=api", keys sorted.
func matrixText(m map[string]any) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = render.Visible(k) + "=" + valueText(m[k])
	}
	return strings.Join(parts, ", ")
}

// valueText shows an output or matrix value: a string as it is, anything else as JSON, cut at
// 2 KiB (outputs are agent-written).
func valueText(v any) string {
	s, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		s = string(b)
	}
	if len(s) > 2048 {
		s = s[:2048] + "…"
	}
	return render.Visible(s)
}

func durationText(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func costText(usd float64) string {
	switch {
	case usd <= 0:
		return ""
	case usd < 0.01:
		return fmt.Sprintf("$%.4f", usd)
	}
	return fmt.Sprintf("$%.2f", usd)
}

func tokensText(u result.Usage) string {
	if u.InputTokens == 0 && u.OutputTokens == 0 {
		return ""
	}
	return groupDigits(u.InputTokens) + " in · " + groupDigits(u.OutputTokens) + " out"
}

// groupDigits writes n with thousands separators: 12,345.
func groupDigits(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// runElapsed is how long the run took, or has been running.
func runElapsed(r store.Run, now time.Time) time.Duration {
	switch {
	case r.StartedAt.IsZero():
		return 0
	case !r.FinishedAt.IsZero():
		return r.FinishedAt.Sub(r.StartedAt)
	}
	return now.Sub(r.StartedAt)
}
