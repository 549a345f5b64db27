package runner

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

// aggregate turns a node's job results into what dependents see (needs.<agent>) and what
// the report shows. A fanned-out agent exposes the list of its instances' outputs and
// succeeds only when every instance did; with continue-on-error its failures are counted but
// do not fail it. Replicas with a quorum expose the winning replica's outputs.
func aggregate(n *plan.Node, jobs []*result.Job) (*result.Agent, plan.NeedResult) {
	a := &result.Agent{Name: n.Agent, Counts: map[string]int{}, ContinueOnError: n.ContinueOnError}
	need := plan.NeedResult{Counts: a.Counts}
	var failed, cancelled, overBudget int
	for _, j := range jobs {
		a.Jobs = append(a.Jobs, j.ID)
		a.Counts[string(j.Outcome)]++
		switch j.Outcome {
		case result.Success, result.Skipped:
		case result.Cancelled:
			cancelled++
		case result.BudgetExceeded:
			failed++
			overBudget++
		default:
			failed++
		}
	}
	switch {
	case failed > 0 && failed == overBudget && !n.ContinueOnError:
		need.Result = plan.ResultBudgetExceeded
	case failed > 0 && !n.ContinueOnError:
		need.Result = plan.ResultFailure
	case cancelled > 0 && failed == 0:
		need.Result = plan.ResultCancelled
	default:
		need.Result = plan.ResultSuccess
	}

	if groups := byCombination(jobs); n.Quorum > 0 && n.Judge == "" && len(groups) > 1 {
		// Replicas of one matrix combination vote among themselves, never across combinations.
		need.Result = plan.ResultSuccess
		outs := make([]any, 0, len(groups))
		var winners []*result.Job
		for _, g := range groups {
			v := tally(n, g)
			v.Matrix = g[0].Matrix
			a.Votes = append(a.Votes, v)
			w := findJob(g, v.WinningJob)
			if !v.Reached || w == nil {
				need.Result = plan.ResultNoQuorum
				outs = append(outs, map[string]any{})
				continue
			}
			winners = append(winners, w)
			outs = append(outs, outputsOf(w))
		}
		need.Outputs, need.Report = outs, joinReports(winners)
		a.Result = need.Result
		return a, need
	}
	if n.Quorum > 0 && n.Judge == "" {
		a.Vote = tally(n, jobs)
		if w := findJob(jobs, a.Vote.WinningJob); a.Vote.Reached && w != nil {
			need.Result = plan.ResultSuccess
			need.Outputs = outputsOf(w)
			need.Report = w.Report
		} else {
			need.Result = plan.ResultNoQuorum
			need.Outputs = listOutputs(jobs)
		}
		a.Result = need.Result
		return a, need
	}
	if len(jobs) == 1 && !fannedOut(n) {
		need.Outputs = outputsOf(jobs[0])
		need.Report = jobs[0].Report
	} else {
		need.Outputs = listOutputs(jobs)
		need.Report = joinReports(jobs)
	}
	a.Result = need.Result
	return a, need
}

func fannedOut(n *plan.Node) bool {
	return n.Replicas > 1 || len(n.Instances) > 1 || n.Dynamic && len(n.Instances) > 0 && n.Instances[0].Matrix != nil
}

// tally counts the replicas' votes on n.Vote. A value wins with at least quorum votes and
// more votes than any other value; failed replicas and replicas that did not vote dissent.
func tally(n *plan.Node, jobs []*result.Job) *result.Vote {
	v := &result.Vote{Key: n.Vote, Quorum: n.Quorum, Tally: map[string]int{}}
	first := map[string]*result.Job{}
	values := map[string]any{}
	for _, j := range jobs {
		if j.Outcome != result.Success {
			continue
		}
		val, ok := j.Outputs[n.Vote]
		if !ok {
			continue
		}
		k := canonical(val)
		v.Tally[k]++
		if first[k] == nil {
			first[k], values[k] = j, val
		}
	}
	best, bestN, tie := "", 0, false
	keys := make([]string, 0, len(v.Tally))
	for k := range v.Tally {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch c := v.Tally[k]; {
		case c > bestN:
			best, bestN, tie = k, c, false
		case c == bestN:
			tie = true
		}
	}
	if bestN >= n.Quorum && !tie {
		v.Reached = true
		v.Winner = values[best]
		v.WinningJob = first[best].ID
	}
	for _, j := range jobs {
		switch {
		case j.Outcome != result.Success:
			v.Dissent = append(v.Dissent, fmt.Sprintf("%s (%s)", j.ID, j.Outcome))
		case !hasKey(j.Outputs, n.Vote):
			v.Dissent = append(v.Dissent, fmt.Sprintf("%s (no %s)", j.ID, n.Vote))
		case !v.Reached || canonical(j.Outputs[n.Vote]) != best:
			v.Dissent = append(v.Dissent, fmt.Sprintf("%s (%s=%s)", j.ID, n.Vote, canonical(j.Outputs[n.Vote])))
		}
	}
	return v
}

// replicaView is what a judge sees of the agent it judges: every replica's outputs.
func replicaView(jobs []*result.Job) plan.NeedResult {
	need := plan.NeedResult{Result: plan.ResultSuccess, Outputs: listOutputs(jobs), Report: joinReports(jobs), Counts: map[string]int{}}
	for _, j := range jobs {
		need.Counts[string(j.Outcome)]++
		if j.Outcome != result.Success {
			need.Result = plan.ResultFailure
		}
	}
	return need
}

// decideByJudge lets the judge's outputs decide a replicated agent: the judge writes the
// vote key (or `decision`) with the accepted value, or `replica` with the winning replica's
// number. Without a verdict the agent has no quorum.
func decideByJudge(n *plan.Node, jobs []*result.Job, judge *nodeState) (*result.Agent, plan.NeedResult) {
	a, _ := aggregate(&plan.Node{Agent: n.Agent, Replicas: n.Replicas, ContinueOnError: n.ContinueOnError}, jobs)
	key := n.Vote
	if key == "" {
		key = "decision"
	}
	v := &result.Vote{Key: key, Quorum: n.Quorum, Tally: map[string]int{}, Judge: n.Judge}
	a.Vote = v
	need := plan.NeedResult{Result: plan.ResultNoQuorum, Outputs: listOutputs(jobs), Counts: a.Counts}
	var verdict map[string]any
	if judge.need.Result == plan.ResultSuccess {
		verdict, _ = judge.need.Outputs.(map[string]any)
	}
	for _, j := range jobs {
		if j.Outcome == result.Success && hasKey(j.Outputs, key) {
			v.Tally[canonical(j.Outputs[key])]++
		}
	}
	var winner *result.Job
	if r, ok := verdict["replica"]; ok {
		for _, j := range jobs {
			if fmt.Sprint(j.Replica) == fmt.Sprint(r) && j.Outcome == result.Success {
				winner = j
			}
		}
	} else if val, ok := verdict[key]; ok {
		v.Winner = val
		for _, j := range jobs {
			if winner == nil && j.Outcome == result.Success && canonical(j.Outputs[key]) == canonical(val) {
				winner = j
			}
		}
		if winner == nil {
			// The judge may decide a value no replica proposed; it stands on the judge's word.
			v.Reached = true
			need.Result = plan.ResultSuccess
			need.Outputs = map[string]any{key: val}
		}
	}
	if winner != nil {
		v.Reached = true
		v.WinningJob = winner.ID
		if v.Winner == nil {
			v.Winner = winner.Outputs[key]
		}
		need.Result = plan.ResultSuccess
		need.Outputs = outputsOf(winner)
		need.Report = winner.Report
	}
	for _, j := range jobs {
		if j.ID != v.WinningJob && (winner != nil || !v.Reached) {
			v.Dissent = append(v.Dissent, j.ID)
		}
	}
	a.Result = need.Result
	return a, need
}

func findJob(jobs []*result.Job, id string) *result.Job {
	for _, j := range jobs {
		if j.ID == id && id != "" {
			return j
		}
	}
	return nil
}

func outputsOf(j *result.Job) map[string]any {
	if j.Outputs == nil {
		return map[string]any{}
	}
	return j.Outputs
}

func listOutputs(jobs []*result.Job) []any {
	out := make([]any, len(jobs))
	for i, j := range jobs {
		out[i] = outputsOf(j)
	}
	return out
}

func joinReports(jobs []*result.Job) string {
	var s string
	for _, j := range jobs {
		if j.Report == "" {
			continue
		}
		s += "### " + j.ID + "\n\n" + j.Report + "\n\n"
	}
	return s
}

func hasKey(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}

// canonical renders a vote value so equal JSON values compare equal ("yes" == "yes", 1 == 1.0).
func canonical(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// byCombination groups jobs by their matrix combination, in first-seen order.
func byCombination(jobs []*result.Job) [][]*result.Job {
	index := map[string]int{}
	var groups [][]*result.Job
	for _, j := range jobs {
		k := canonical(j.Matrix)
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], j)
	}
	return groups
}
