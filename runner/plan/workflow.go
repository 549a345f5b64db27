package plan

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/runner/expr"
)

// WorkflowFile is where an orchestrating agent writes its workflow, in its output directory.
const WorkflowFile = "workflow.yaml"

// WorkflowErrorsFile is where the runner puts the problems of the last workflow before the
// orchestrator tries again, in its output directory.
const WorkflowErrorsFile = "workflow-errors.txt"

// Orchestration is an orchestrating node's envelope: what the workflow its agent writes may
// ask for. The engine builds that workflow with Node.BuildWorkflow and runs it as part of the run.
type Orchestration struct {
	Images       []string      `json:"images"`
	MaxAgents    int           `json:"max_agents"`
	MaxInstances int           `json:"max_instances"`
	MaxDepth     int           `json:"max_depth"`
	Timeout      time.Duration `json:"timeout"`
	Retries      int           `json:"retries"`
	// Image is the generated agents' image where they name none: the orchestrator's.
	Image string `json:"image"`
	// Network is the widest network a generated agent may have: the orchestrator's own.
	Network config.Network `json:"network"`
	// Secrets are those the generated agents may ask for: the routine's, as this run has them.
	Secrets []string `json:"secrets,omitempty"`
}

func orchestration(a *config.Agent, run *Run) *Orchestration {
	o := a.Orchestrate
	if o == nil {
		return nil
	}
	return &Orchestration{Images: slices.Clone(o.Images), MaxAgents: o.MaxAgents, MaxInstances: o.MaxInstances,
		MaxDepth: o.MaxDepth, Timeout: o.Timeout, Retries: o.Retries, Image: a.Image, Network: a.Network,
		Secrets: slices.Clone(run.Secrets)}
}

// Contract is what an orchestrating preset agent is told besides its task: where to write the
// workflow, its format (from the format's own key tables) and the envelope.
func (o *Orchestration) Contract() string {
	var b strings.Builder
	b.WriteString("## How to hand the work out\n\n")
	b.WriteString("Do not do the task yourself. Write a workflow for it to $AGENT_OUTPUT_DIR/" + WorkflowFile + "; the runner runs it after you exit, each agent in its own container on its own copy of the repository. ")
	b.WriteString("It is a YAML file in the .agents format without on:, secrets:, concurrency: and publish:. ")
	b.WriteString("Agents run in parallel unless one needs another; `matrix: {item: ${{ fromJSON(needs.plan.outputs.items) }}}` fans an agent out over a list an earlier agent wrote to its outputs.json; `replicas` with `vote` (or `judge`) cross-checks; `changes: keep` collects an agent's edits for the result.\n\n")
	b.WriteString(config.DescribeWorkflowFormat())
	b.WriteString("\nThe envelope (a workflow outside it is refused):\n")
	fmt.Fprintf(&b, "- images: %s (default %s)\n", strings.Join(o.Images, ", "), o.Image)
	fmt.Fprintf(&b, "- at most %d agent instances in all, %d for one agent (matrix × replicas)\n", o.MaxAgents, o.MaxInstances)
	fmt.Fprintf(&b, "- network: no wider than %s\n", networkText(o.Network))
	if len(o.Secrets) > 0 {
		fmt.Fprintf(&b, "- secrets an agent may list: %s\n", strings.Join(o.Secrets, ", "))
	} else {
		b.WriteString("- no secrets\n")
	}
	if o.MaxDepth > 1 {
		fmt.Fprintf(&b, "- an agent may orchestrate again (orchestrate: true), %d more level(s)\n", o.MaxDepth-1)
	} else {
		b.WriteString("- no agent of the workflow may orchestrate\n")
	}
	fmt.Fprintf(&b, "- the whole workflow must finish within %s\n", o.Timeout)
	fmt.Fprintf(&b, "If the workflow does not load, you are run again with its errors in $AGENT_OUTPUT_DIR/%s (%d more attempt(s)).\n", WorkflowErrorsFile, o.Retries)
	return b.String()
}

func networkText(n config.Network) string {
	if n.Mode == config.NetworkAllow {
		return "allow: [" + strings.Join(n.Allow, ", ") + "]"
	}
	if n.Mode == "" {
		return config.NetworkNone
	}
	return n.Mode
}

// Workflow is a workflow an orchestrating agent wrote, planned as part of its run: its agents
// are named under the orchestrator ("migrate/plan", "migrate/edit[svc-a]").
type Workflow struct {
	Orchestrator string
	Nodes        []*Node // in an order where every node comes after its needs
	// MaxAgents bounds the instances of every node together, dynamic fan-outs included: the
	// engine counts them as they expand.
	MaxAgents int
	Timeout   time.Duration
}

// WorkflowError lists every problem of a workflow that cannot run: it does not load or
// validate (file:line:col: message), or it asks for more than the envelope allows.
type WorkflowError struct {
	Problems []string
}

func (e *WorkflowError) Error() string { return strings.Join(e.Problems, "\n") }

// BuildWorkflow plans the workflow data (named file in its errors) that n's agent wrote, within
// n's envelope. Nothing of a workflow with problems runs: the error, a *WorkflowError, lists
// them all.
func (n *Node) BuildWorkflow(file string, data []byte) (*Workflow, error) {
	o := n.Orchestrate
	if o == nil || n.compiled == nil {
		return nil, fmt.Errorf("agent %s does not orchestrate", n.Agent)
	}
	r, errs := config.ParseWorkflow(file, data, config.WorkflowRules{Image: o.Image, Secrets: o.Secrets, Depth: o.MaxDepth})
	if len(errs) > 0 {
		return nil, &WorkflowError{Problems: errorLines(errs)}
	}
	cr, errs := compileRoutine(r)
	if len(errs) > 0 {
		return nil, &WorkflowError{Problems: errorLines(errs)}
	}
	problems := envelopeProblems(o, r)
	// The copy keeps the cached compilation's own fan-out cap: the envelope's may be lower.
	crc := *cr
	crc.maxFanOut = min(cr.maxFanOut, o.MaxInstances)
	run := &Run{Routine: r.Name, Secrets: slices.Clone(o.Secrets), MaxFanOut: crc.maxFanOut}
	ctx := n.compiled.base
	ctx.Needs, ctx.Matrix = nil, nil
	if len(cr.env) > 0 {
		env := maps.Clone(ctx.Env)
		if env == nil {
			env = map[string]string{}
		}
		for _, e := range cr.env {
			v, err := e.t.Render(&ctx)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: env.%s: %v", file, e.name, err))
				continue
			}
			env[e.name] = v
		}
		ctx.Env = env
	}
	order, err := topoOrder(r)
	if err != nil {
		problems = append(problems, err.Error())
	}
	prefix := n.Agent + "/"
	wf := &Workflow{Orchestrator: n.Agent, MaxAgents: o.MaxAgents, Timeout: o.Timeout}
	static := 0
	for _, i := range order {
		sub, err := buildNodeWithin(crc.agents[i], &crc, ctx, run, prefix, o)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if !sub.Dynamic {
			static += len(sub.Instances)
		}
		wf.Nodes = append(wf.Nodes, sub)
	}
	if static > o.MaxAgents {
		problems = append(problems, fmt.Sprintf("the workflow runs %d agent instances; the envelope allows %d in all", static, o.MaxAgents))
	}
	if len(problems) > 0 {
		return nil, &WorkflowError{Problems: problems}
	}
	return wf, nil
}

// buildNodeWithin builds a workflow's node under prefix: its name, needs, judge and instances
// carry the orchestrator's name, and an orchestrator in it gets an envelope inside o's.
func buildNodeWithin(ca *compiledAgent, cr *compiledRoutine, ctx expr.Context, run *Run, prefix string, o *Orchestration) (*Node, error) {
	sub, err := buildNodeAt(ca, cr, ctx, run, prefix)
	if err != nil {
		return nil, err
	}
	sub.Agent = prefix + sub.Agent
	for i, need := range sub.Needs {
		sub.Needs[i] = prefix + need
	}
	if sub.Judge != "" {
		sub.Judge = prefix + sub.Judge
	}
	if so := sub.Orchestrate; so != nil {
		// One level less, and never more than the level above allows.
		so.MaxDepth = min(so.MaxDepth, o.MaxDepth-1)
		so.MaxAgents = min(so.MaxAgents, o.MaxAgents)
		so.MaxInstances = min(so.MaxInstances, o.MaxInstances)
		so.Timeout = min(so.Timeout, o.Timeout)
		so.Images = slices.DeleteFunc(so.Images, func(img string) bool { return !slices.Contains(o.Images, img) })
		so.Network = o.Network
	}
	return sub, nil
}

// envelopeProblems lists what workflow r asks for beyond o: images, networks, a nested
// envelope wider than o.
func envelopeProblems(o *Orchestration, r *config.Routine) []string {
	var out []string
	for _, a := range r.Agents {
		where := fmt.Sprintf("%s:%d:%d: agent %s", a.Pos.File, a.Pos.Line, a.Pos.Col, a.Name)
		if !slices.Contains(o.Images, a.Image) {
			out = append(out, fmt.Sprintf("%s: image %q is not one the envelope allows (%s)", where, a.Image, strings.Join(o.Images, ", ")))
		}
		if why := widerNetwork(a.Network, o.Network); why != "" {
			out = append(out, fmt.Sprintf("%s: network %s is wider than the orchestrator's (%s): %s", where, networkText(a.Network), networkText(o.Network), why))
		}
		if so := a.Orchestrate; so != nil {
			for _, img := range so.Images {
				if !slices.Contains(o.Images, img) {
					out = append(out, fmt.Sprintf("%s: orchestrate.images names %q, which the envelope does not allow", where, img))
				}
			}
			if so.MaxAgents > o.MaxAgents {
				out = append(out, fmt.Sprintf("%s: orchestrate.max-agents %d is over the envelope's %d", where, so.MaxAgents, o.MaxAgents))
			}
			if so.MaxDepth > o.MaxDepth-1 {
				out = append(out, fmt.Sprintf("%s: orchestrate.max-depth %d is over the %d level(s) the envelope leaves", where, so.MaxDepth, o.MaxDepth-1))
			}
		}
	}
	return out
}

// widerNetwork says why network n allows what limit does not ("" when it does not).
func widerNetwork(n, limit config.Network) string {
	mode := func(m string) int {
		switch m {
		case config.NetworkOpen:
			return 2
		case config.NetworkAllow:
			return 1
		}
		return 0
	}
	switch {
	case mode(n.Mode) > mode(limit.Mode):
		return "it reaches more places"
	case n.Mode == config.NetworkAllow && limit.Mode == config.NetworkAllow:
		var extra []string
		for _, h := range n.Allow {
			if !slices.Contains(limit.Allow, h) {
				extra = append(extra, h)
			}
		}
		if len(extra) > 0 {
			return "it also allows " + strings.Join(extra, ", ")
		}
	}
	return ""
}

func errorLines(errs config.Errors) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

// Attempt is the orchestrator's instance for its attempt number attempt (2 or more) after a
// workflow with problems: its id says the attempt ("migrate~2"), and its prompt ends with the
// problems, which a preset agent's command line carries too.
func (n *Node) Attempt(first *Instance, attempt int, problems string) (*Instance, error) {
	if n.compiled == nil {
		return nil, fmt.Errorf("agent %s: %w", n.Agent, errNotBuilt)
	}
	inst := *first
	inst.ID = first.ID + "~" + strconv.Itoa(attempt)
	inst.Env = maps.Clone(first.Env)
	inst.Prompt = first.Prompt + "\n\n## Your last workflow was refused\n\nFix these problems and write " + WorkflowFile + " again:\n\n" + problems + "\n"
	if n.compiled.ca.preset != nil {
		ctx := n.compiled.base
		argv, _, err := n.compiled.argv(inst.Prompt, &ctx, renderer{})
		if err != nil {
			return nil, err
		}
		inst.Argv = argv
	}
	return &inst, nil
}
