package runner

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

// keptPatches lists, in plan order, the patches that make up the run's changes: every
// successful instance of a `changes: keep` agent, except that of replicas only the winner
// (or, without a vote, the first successful one) counts, so replicas never stack.
// only, when not nil, limits the list to those agents.
func keptPatches(p *plan.Run, res *result.Run, agents map[string]*result.Agent, only map[string]bool) []NamedPatch {
	var out []NamedPatch
	for _, n := range p.Nodes {
		if n.Changes != "keep" || only != nil && !only[n.Agent] {
			continue
		}
		a := agents[n.Agent]
		if a == nil {
			continue
		}
		replicated := n.Replicas > 1
		// Of voting replicas only the winners' patches count (one per matrix combination).
		winners := map[string]bool{}
		votes := a.Votes
		if a.Vote != nil {
			votes = append(votes, a.Vote)
		}
		for _, v := range votes {
			if v.Reached && v.WinningJob != "" {
				winners[v.WinningJob] = true
			}
		}
		if len(votes) > 0 && len(winners) == 0 {
			continue
		}
		taken := map[string]bool{}
		for _, id := range a.Jobs {
			j := res.Job(id)
			if j == nil || j.Outcome != result.Success || j.Changes == nil || j.Changes.PatchSize == 0 {
				continue
			}
			if replicated {
				key := fmt.Sprint(j.Matrix)
				if len(votes) > 0 && !winners[id] || taken[key] {
					continue
				}
				taken[key] = true
			}
			out = append(out, NamedPatch{Name: id, File: j.Changes.PatchFile})
		}
	}
	return out
}

// consolidate merges the kept patches into one change set.
func (r *runState) consolidate(ctx context.Context) {
	agents := map[string]*result.Agent{}
	for _, a := range r.res.Agents {
		agents[a.Name] = a
	}
	// Keep plan order for agents in the result too: goroutines finished in any order.
	ordered := make([]*result.Agent, 0, len(r.res.Agents))
	all := r.allNodes()
	for _, n := range all.Nodes {
		if a := agents[n.Agent]; a != nil {
			ordered = append(ordered, a)
		}
	}
	r.res.Agents = ordered
	r.res.Jobs = orderJobs(ordered, r.res.Jobs)

	patches := keptPatches(all, r.res, agents, nil)
	if len(patches) == 0 {
		return
	}
	if r.e.Merger == nil {
		if len(patches) == 1 {
			// One job's patch, bounded by its limits: the run's result holds it like a merge's.
			patch, err := os.ReadFile(patches[0].File)
			if err != nil {
				r.res.Error = fmt.Sprintf("read the changes of %s: %v", patches[0].Name, err)
				return
			}
			r.res.Patch = patch
			r.res.Applied = []string{patches[0].Name}
			if j := r.res.Job(patches[0].Name); j != nil {
				r.res.Files = j.Changes.Files
			}
			return
		}
		r.res.Error = "several agents kept changes but this runner has no merger to consolidate them"
		return
	}
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	m, err := r.e.Merger.Merge(mctx, patches)
	if err != nil {
		r.res.Error = fmt.Sprintf("consolidate changes: %v", err)
		return
	}
	if why := r.mask.refuseSecretChanges(m.Patch); why != "" {
		// Each kept patch was checked; a value can still appear where two of them meet.
		r.res.Error = "the combined " + why
		return
	}
	r.res.Patch, r.res.Files, r.res.Commit = m.Patch, m.Files, m.Commit
	r.res.Applied, r.res.Conflicts = m.Applied, m.Conflicts
}

func orderJobs(agents []*result.Agent, jobs []*result.Job) []*result.Job {
	byID := make(map[string]*result.Job, len(jobs))
	for _, j := range jobs {
		byID[j.ID] = j
	}
	out := make([]*result.Job, 0, len(jobs))
	for _, a := range agents {
		for _, id := range a.Jobs {
			if j := byID[id]; j != nil {
				out = append(out, j)
				delete(byID, id)
			}
		}
	}
	for _, j := range jobs {
		if _, left := byID[j.ID]; left {
			out = append(out, j)
		}
	}
	return out
}

// conclusion is the run's verdict as a check run would show it.
func (r *runState) conclusion(ctx context.Context) result.Conclusion {
	if ctx.Err() != nil {
		return result.ConclusionCancelled
	}
	ran, cancelled := false, false
	failing := []*result.Agent{}
	for _, a := range r.res.Agents {
		switch a.Result {
		case plan.ResultFailure, plan.ResultNoQuorum, plan.ResultBudgetExceeded:
			if !a.ContinueOnError {
				failing = append(failing, a)
			}
		case plan.ResultCancelled:
			cancelled = true
		}
	}
	for _, j := range r.res.Jobs {
		if j.Outcome != result.Skipped {
			ran = true
		}
	}
	if len(failing) > 0 {
		// Timed out only when every failure is a timeout; a missed quorum among successful
		// replicas is a failure.
		allTimedOut, timedOut := true, false
		for _, a := range failing {
			if a.Result == plan.ResultNoQuorum {
				allTimedOut = false
			}
			for _, id := range a.Jobs {
				j := r.res.Job(id)
				switch {
				case j == nil || j.Outcome == result.Success:
				case j.Outcome == result.TimedOut:
					timedOut = true
				default:
					allTimedOut = false
				}
			}
		}
		if allTimedOut && timedOut {
			return result.ConclusionTimedOut
		}
		return result.ConclusionFailure
	}
	if len(r.res.Conflicts) > 0 || r.res.Error != "" {
		return result.ConclusionFailure
	}
	if cancelled {
		return result.ConclusionCancelled
	}
	if !ran {
		return result.ConclusionNeutral
	}
	return result.ConclusionSuccess
}

// stageBase is the commit a node's workspaces start from: the run's commit with the kept
// changes of every agent it (transitively) needs, merged in plan order, so that a verify stage
// checks the audit's fixes rather than the untouched commit. Empty when those agents kept
// nothing. Each stage's patches are relative to its own base, which already holds its
// ancestors' changes, so merging every kept patch in plan order (as consolidate does) stacks
// the stages correctly.
func (r *runState) stageBase(ctx context.Context, n *plan.Node) (string, error) {
	ancestors := map[string]bool{}
	var walk func(name string)
	walk = func(name string) {
		ns := r.node(name)
		if ns == nil || ancestors[name] {
			return
		}
		ancestors[name] = true
		for _, need := range ns.node.Needs {
			walk(need)
		}
	}
	for _, need := range n.Needs {
		walk(need)
	}
	// A workflow's agents build on what their orchestrator's own needs kept.
	for p := r.orchestratorOf(n.Agent); p != nil; p = r.orchestratorOf(p.Agent) {
		for _, need := range p.Needs {
			walk(need)
		}
	}
	if len(ancestors) == 0 {
		return "", nil
	}
	r.mu.Lock()
	agents := map[string]*result.Agent{}
	for _, a := range r.res.Agents {
		agents[a.Name] = a
	}
	patches := keptPatches(r.allNodes(), r.res, agents, ancestors)
	r.mu.Unlock()
	if len(patches) == 0 {
		return "", nil
	}
	if r.e.Merger == nil {
		return "", fmt.Errorf("the agents it needs kept changes but this runner has no merger")
	}
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	m, err := r.e.Merger.Merge(mctx, patches)
	if err != nil {
		return "", err
	}
	return m.Commit, nil
}
