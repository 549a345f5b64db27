package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agentrunner/agentrunner/internal/safefile"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

// WorkflowStore keeps the workflow each orchestrator of a run wrote (the daemon's store).
type WorkflowStore interface {
	SaveWorkflow(ctx context.Context, runID, agent string, data []byte) error
	// Workflow returns what SaveWorkflow kept, or an error wrapping fs.ErrNotExist.
	Workflow(ctx context.Context, runID, agent string) ([]byte, error)
}

// maxWorkflowSize bounds the workflow file an orchestrator may write.
const maxWorkflowSize = 1 << 20

// instanceBudget counts a workflow's instances, dynamic fan-outs included, against its
// envelope's max-agents.
type instanceBudget struct {
	mu    sync.Mutex
	left  int
	limit int
}

func (b *instanceBudget) take(n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.left {
		return fmt.Errorf("the workflow's agents would run more than the %d instances its envelope allows (%d more asked, %d left)", b.limit, n, b.left)
	}
	b.left -= n
	return nil
}

// node returns the state of the agent named name (a workflow's too), or nil.
func (r *runState) node(name string) *nodeState {
	r.nodesMu.RLock()
	defer r.nodesMu.RUnlock()
	return r.nodes[name]
}

// orchestratorOf returns the orchestrating node whose workflow holds agent, or nil.
func (r *runState) orchestratorOf(agent string) *plan.Node {
	r.nodesMu.RLock()
	defer r.nodesMu.RUnlock()
	for orch, nodes := range r.workflows {
		for _, n := range nodes {
			if n.Agent == agent {
				return r.nodes[orch].node
			}
		}
	}
	return nil
}

// allNodes is the run's plan with each orchestrator's workflow right after it, in order.
func (r *runState) allNodes() *plan.Run {
	r.nodesMu.RLock()
	defer r.nodesMu.RUnlock()
	all := *r.info.Plan
	all.Nodes = nil
	var add func(n *plan.Node)
	add = func(n *plan.Node) {
		all.Nodes = append(all.Nodes, n)
		for _, s := range r.workflows[n.Agent] {
			add(s)
		}
	}
	for _, n := range r.info.Plan.Nodes {
		add(n)
	}
	return &all
}

// orchestrate finishes orchestrating node ns once its agent has run (ns.jobs holds its job):
// it reads the workflow the agent wrote, hands a refused one back with its problems for
// another attempt (as many as the envelope's retries), and runs the accepted one as part of
// the run. It sets ns.agent and ns.need.
func (r *runState) orchestrate(ctx context.Context, ns *nodeState, first *plan.Instance, base string) {
	n := ns.node
	o := n.Orchestrate
	var wf *plan.Workflow
	for attempt := 1; ; attempt++ {
		j := ns.jobs[len(ns.jobs)-1]
		if j.Outcome != result.Success {
			r.orchestratorDone(ns, j, plan.ResultFailure, nil)
			if j.Outcome == result.Cancelled {
				ns.need.Result, ns.agent.Result = plan.ResultCancelled, plan.ResultCancelled
			}
			return
		}
		data, err := r.readWorkflow(j.ID)
		if err == nil {
			wf, err = n.BuildWorkflow(plan.WorkflowFile, data)
		}
		if err == nil {
			j.Workflow = r.mask.string(string(data))
			if r.e.Workflows != nil {
				// Kept before any of its jobs start: an attempt after a crash runs it again
				// rather than asking the orchestrator for another.
				if err := r.e.Workflows.SaveWorkflow(context.WithoutCancel(ctx), r.info.ID, n.Agent, data); err != nil {
					r.log.Warn("keep the orchestrator's workflow with the run", "agent", n.Agent, "err", err)
				}
			}
			break
		}
		problems := r.mask.string(err.Error())
		j.WorkflowErrors = problems
		r.log.Info("orchestrator's workflow refused", "agent", n.Agent, "attempt", attempt, "problems", strings.Count(problems, "\n")+1)
		if attempt > o.Retries || ctx.Err() != nil {
			j.Outcome = result.Error
			j.Error = fmt.Sprintf("its workflow was refused (attempt %d of %d):\n%s", attempt, o.Retries+1, problems)
			r.orchestratorDone(ns, j, plan.ResultFailure, nil)
			return
		}
		next, err := n.Attempt(first, attempt+1, problems)
		if err != nil {
			j.Outcome, j.Error = result.Error, err.Error()
			r.orchestratorDone(ns, j, plan.ResultFailure, nil)
			return
		}
		r.emit(reporters.Update{Kind: reporters.AgentExpanded, Agent: n.Agent, Instances: []*plan.Instance{next}})
		p := r.prepare(ctx, next, base)
		if p.fail == "" {
			if err := os.WriteFile(filepath.Join(p.out, plan.WorkflowErrorsFile), []byte(problems+"\n"), 0o644); err != nil {
				p.fail = fmt.Sprintf("write %s: %v", plan.WorkflowErrorsFile, err)
			}
		}
		ns.jobs = append(ns.jobs, r.runJob(ctx, next, p))
	}
	r.runWorkflow(ctx, ns, wf)
}

// resumeWorkflow runs the workflow an earlier attempt of this run kept for orchestrating node
// ns, if there is one, without running the orchestrator again; it reports whether it did.
func (r *runState) resumeWorkflow(ctx context.Context, ns *nodeState, inst *plan.Instance) bool {
	if r.e.Workflows == nil {
		return false
	}
	n := ns.node
	data, err := r.e.Workflows.Workflow(ctx, r.info.ID, n.Agent)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("read the workflow an earlier attempt kept", "agent", n.Agent, "err", err)
		}
		return false
	}
	wf, err := n.BuildWorkflow(plan.WorkflowFile, data)
	if err != nil {
		r.log.Warn("the workflow an earlier attempt kept does not build; asking the orchestrator again", "agent", n.Agent, "err", err)
		return false
	}
	now := time.Now()
	j := &result.Job{ID: inst.ID, Agent: inst.Agent, Outcome: result.Success, Started: now, Finished: now,
		Workflow: r.mask.string(string(data)),
		Report:   "This run was started again; the workflow this agent wrote in an earlier attempt runs again as it was kept."}
	r.addJob(j)
	r.emit(reporters.Update{Kind: reporters.JobFinished, Job: j, Instance: inst})
	ns.jobs = []*result.Job{j}
	r.log.Info("running the workflow an earlier attempt kept", "agent", n.Agent)
	r.runWorkflow(ctx, ns, wf)
	return true
}

// readWorkflow reads the workflow the orchestrator's job wrote to its output directory:
// beneath it, without following links, bounded, as everything an agent leaves.
func (r *runState) readWorkflow(job string) ([]byte, error) {
	out := filepath.Join(r.opts.Dir, "jobs", JobDirName(job), "out")
	b, err := safefile.Read(out, plan.WorkflowFile, maxWorkflowSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &plan.WorkflowError{Problems: []string{"the agent wrote no " + plan.WorkflowFile + " in $AGENT_OUTPUT_DIR"}}
	}
	if err != nil {
		return nil, &plan.WorkflowError{Problems: []string{err.Error()}}
	}
	return b, nil
}

// runWorkflow runs an orchestrator's accepted workflow as part of the run, within its
// envelope's time budget, and makes the orchestrator's result the workflow's.
func (r *runState) runWorkflow(ctx context.Context, ns *nodeState, wf *plan.Workflow) {
	n := ns.node
	wctx, cancel := context.WithTimeoutCause(ctx, wf.Timeout, fmt.Errorf("the workflow of %s ran past its %s budget", n.Agent, wf.Timeout))
	defer cancel()
	budget := &instanceBudget{left: wf.MaxAgents, limit: wf.MaxAgents}
	subs := make([]*nodeState, 0, len(wf.Nodes))
	r.nodesMu.Lock()
	for _, sn := range wf.Nodes {
		s := &nodeState{node: sn, ready: make(chan struct{}), done: make(chan struct{}), budget: budget}
		r.nodes[sn.Agent] = s
		subs = append(subs, s)
	}
	r.workflows[n.Agent] = wf.Nodes
	r.nodesMu.Unlock()
	r.log.Info("running the orchestrator's workflow", "agent", n.Agent, "agents", len(wf.Nodes))

	judgeOf := map[string]string{}
	for _, sn := range wf.Nodes {
		if sn.Judge != "" {
			judgeOf[sn.Judge] = sn.Agent
		}
	}
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.runNode(wctx, s, judgeOf[s.node.Agent])
		}()
	}
	wg.Wait()

	needed := map[string]bool{}
	for _, sn := range wf.Nodes {
		for _, need := range sn.Needs {
			needed[need] = true
		}
	}
	res := plan.ResultSuccess
	outputs := map[string]any{}
	for _, s := range subs {
		switch s.need.Result {
		case plan.ResultSuccess, plan.ResultSkipped:
		case plan.ResultCancelled:
			if res == plan.ResultSuccess {
				res = plan.ResultCancelled
			}
		default:
			if !s.node.ContinueOnError {
				res = plan.ResultFailure
			}
		}
		// What the workflow ends in is what dependents of the orchestrator read.
		if m, ok := s.need.Outputs.(map[string]any); ok && !needed[s.node.Agent] {
			maps.Copy(outputs, m)
		}
	}
	final := ns.jobs[len(ns.jobs)-1]
	if cause := context.Cause(wctx); cause != nil && ctx.Err() == nil {
		res = plan.ResultFailure
		final.Error = cause.Error()
	}
	r.orchestratorDone(ns, final, res, outputs)
}

// orchestratorDone sets the orchestrator's result: its jobs (every attempt), result res, and
// its own outputs under the workflow's.
func (r *runState) orchestratorDone(ns *nodeState, final *result.Job, res string, workflowOutputs map[string]any) {
	n := ns.node
	a, need := aggregate(n, []*result.Job{final})
	a.Jobs = a.Jobs[:0]
	for _, j := range ns.jobs {
		a.Jobs = append(a.Jobs, j.ID)
	}
	a.Result, need.Result = res, res
	if len(workflowOutputs) > 0 {
		own, _ := need.Outputs.(map[string]any)
		merged := maps.Clone(own)
		if merged == nil {
			merged = map[string]any{}
		}
		maps.Copy(merged, workflowOutputs)
		need.Outputs = merged
	}
	ns.agent, ns.need = a, need
}
