package plan

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/preset"
	"github.com/agentrunner/agentrunner/runner/expr"
)

// compiledNode is what Expand and Condition evaluate. It is read-only after Build, so the
// engine may call both from several goroutines.
type compiledNode struct {
	ca      *compiledAgent
	base    expr.Context // event, routine, inputs and the run's env
	secrets []string     // the agent's secrets this run may hand out
	// keySecrets are those of secrets that are only the preset's model key.
	keySecrets []string
	maxFanOut  int
	// prefix names the node inside an orchestrator's workflow ("migrate/"): its agent and
	// instances carry it, while its expressions read needs.* by the workflow's own names.
	prefix string
	// orch is the node's envelope when it orchestrates: a preset agent is told it.
	orch *Orchestration
}

// errNotBuilt is returned for nodes that did not come from Build (a plan read back from JSON).
var errNotBuilt = errors.New("node has no compiled expressions: it was not made by plan.Build (a plan decoded from JSON cannot be expanded; build it again)")

// Condition evaluates the node's `if:` against the finished needs in st. Without `if:` it is
// success(): every need succeeded and the run is not cancelled. success() is false when a
// need failed, missed its quorum, was skipped or was cancelled; failure() is true when a need
// failed or missed its quorum; cancelled() is st.Cancelled; always() is true.
func (n *Node) Condition(st State) (bool, error) {
	status := statusOf(n.Needs, st)
	if n.compiled == nil {
		if n.If != "" {
			return false, fmt.Errorf("agent %s: if: %w", n.Agent, errNotBuilt)
		}
		return status.Success, nil
	}
	ctx := n.compiled.base
	ctx.Needs = needsContext(n.compiled.prefix, n.Needs, st)
	ctx.Status = status
	ok, err := n.compiled.ca.cond.Eval(&ctx)
	if err != nil {
		return false, fmt.Errorf("agent %s: %w", n.Agent, err)
	}
	return ok, nil
}

// Expand returns the node's final instances, resolving everything that reads needs.* against
// st (a dynamic matrix from fromJSON(needs.plan.outputs.tasks), prompts, commands), within the
// routine's fan-out cap. For a static node it returns Instances unchanged. The error names the
// agent and, for expression failures, the config position.
func (n *Node) Expand(st State) ([]*Instance, error) {
	if !n.Dynamic {
		return n.Instances, nil
	}
	if n.compiled == nil {
		return nil, fmt.Errorf("agent %s: %w", n.Agent, errNotBuilt)
	}
	return n.compiled.expand(needsContext(n.compiled.prefix, n.Needs, st), false)
}

func statusOf(needs []string, st State) *expr.Status {
	s := &expr.Status{Success: !st.Cancelled, Cancelled: st.Cancelled}
	for _, name := range needs {
		r, ok := st.Needs[name]
		if !ok || r.Result != ResultSuccess {
			s.Success = false
		}
		if r.Result == ResultFailure || r.Result == ResultNoQuorum || r.Result == ResultBudgetExceeded {
			s.Failure = true
		}
	}
	return s
}

// needsContext exposes only the node's own needs, as GitHub does: reading an agent further
// up the graph goes through the agent in between. Inside a workflow (prefix "migrate/") they
// are named as the workflow names them.
func needsContext(prefix string, needs []string, st State) map[string]expr.Need {
	out := make(map[string]expr.Need, len(needs))
	for _, name := range needs {
		if r, ok := st.Needs[name]; ok {
			out[strings.TrimPrefix(name, prefix)] = expr.Need{Result: r.Result, Outputs: r.Outputs, Report: r.Report, Counts: r.Counts}
		}
	}
	return out
}

// pending is a matrix value known only at run time; previews show its expression.
type pending string

// expand resolves the node's instances. With preview set, whatever reads needs.* (and a
// dynamic matrix) is left as written, for Plan.Instances of a dynamic node.
func (cn *compiledNode) expand(needs map[string]expr.Need, preview bool) ([]*Instance, error) {
	ca := cn.ca
	a := ca.a
	ctx := cn.base
	ctx.Needs = needs

	var combos []combo
	switch {
	case a.Matrix == nil:
		combos = []combo{{}}
	case ca.staticComboErr != nil:
		return nil, ca.staticComboErr
	case !ca.dynamicMatrix:
		combos = ca.staticCombos
	case preview:
		combos = ca.previewCombos()
	default:
		var err error
		if combos, err = ca.dynamicCombos(&ctx); err != nil {
			return nil, err
		}
	}
	reps := replicas(a)
	if total := len(combos) * reps; total > cn.maxFanOut {
		return nil, fanOutError(a, len(combos), total, cn.maxFanOut)
	}
	var ids []string
	if a.Matrix != nil {
		ids = labels(combos)
	}
	rd := renderer{preview: preview}
	if preview {
		rd.keep = []string{expr.CtxNeeds}
		if ca.dynamicMatrix {
			rd.keep = append(rd.keep, expr.CtxMatrix)
		}
	}

	network := a.Network
	if network.Mode == "" {
		network.Mode = config.NetworkNone
	}
	pull := a.PullPolicy
	if pull == "" {
		pull = "if-missing"
	}
	insts := make([]*Instance, 0, len(combos)*reps)
	for i, c := range combos {
		ictx := ctx
		if a.Matrix != nil {
			ictx.Matrix = c.vals
		}
		// Each combination owns its env, with room for the agent's variables.
		var env map[string]string
		if cn.base.Env != nil || len(ca.env) > 0 {
			env = make(map[string]string, len(cn.base.Env)+len(ca.env))
			maps.Copy(env, cn.base.Env)
		}
		for _, e := range ca.env {
			v, err := rd.render(e.t, &ictx)
			if err != nil {
				return nil, fmt.Errorf("agent %s: %w", a.Name, err)
			}
			env[e.name] = v
		}
		ictx.Env = env
		prompt := a.Prompt
		if ca.prompt != nil {
			var err error
			if prompt, err = rd.render(ca.prompt, &ictx); err != nil {
				return nil, fmt.Errorf("agent %s: %w", a.Name, err)
			}
		}
		if cn.orch != nil && ca.preset != nil {
			prompt += "\n\n" + cn.orch.Contract()
		}
		argv, presetEnv, err := cn.argv(prompt, &ictx, rd)
		if err != nil {
			return nil, err
		}
		// The preset's own variables (e.g. IS_SANDBOX for claude) come first; the routine's win.
		// env is this combination's own map and every template has been rendered, so the
		// preset's are added in place.
		if len(presetEnv) > 0 && env == nil {
			env = make(map[string]string, len(presetEnv))
		}
		for k, v := range presetEnv {
			if _, set := env[k]; !set {
				env[k] = v
			}
		}
		id := cn.prefix + a.Name
		if ids != nil {
			id += "[" + ids[i] + "]"
		}
		var matrix map[string]any
		if a.Matrix != nil {
			matrix = c.vals
		}
		for r := 1; r <= reps; r++ {
			inst := &Instance{
				ID:         id,
				Agent:      cn.prefix + a.Name,
				Matrix:     matrix,
				Prompt:     prompt,
				Argv:       argv,
				Preset:     a.Uses,
				Image:      a.Image,
				PullPolicy: pull,
				User:       a.User,
				Env:        env,
				Secrets:    cn.secrets,
				KeySecrets: cn.keySecrets,
				APIs:       ca.apis,
				Timeout:    a.Timeout,
				Resources:  a.Resources,
				Limits:     a.Limits,
				Network:    network,
				Connectors: cn.ca.connectors,
			}
			if reps > 1 {
				inst.ID += "#" + strconv.Itoa(r)
				inst.Replica = r
				// Replicas are independent jobs: none may share mutable state. The first
				// takes this combination's own argv and env, the others copies.
				if r > 1 {
					inst.Argv = slices.Clone(argv)
					inst.Env = maps.Clone(env)
				}
			}
			insts = append(insts, inst)
		}
	}
	return insts, nil
}

// renderer renders expand's templates: fully, or for a preview keeping as written every
// expression that reads one of keep. A method rather than a closure, so that the contexts it
// is handed can stay on the stack.
type renderer struct {
	preview bool
	keep    []string
}

func (r renderer) render(t *expr.Template, c *expr.Context) (string, error) {
	if r.preview {
		return t.Partial(c, r.keep...)
	}
	return t.Render(c)
}

// argv is the preset's command line for the prompt, or the `command:` elements, each
// evaluated to exactly one argv element whatever its text holds.
func (cn *compiledNode) argv(prompt string, ctx *expr.Context, rd renderer) ([]string, map[string]string, error) {
	ca := cn.ca
	a := ca.a
	if ca.preset != nil {
		with := a.With
		if len(ca.with) > 0 {
			with = maps.Clone(a.With)
			for k, t := range ca.with {
				v, err := rd.render(t, ctx)
				if err != nil {
					return nil, nil, fmt.Errorf("agent %s: %w", a.Name, err)
				}
				with[k] = v
			}
		}
		cmd, err := ca.preset.Command(prompt, with, preset.Options{})
		if err != nil {
			return nil, nil, fmt.Errorf("agent %s: %w", a.Name, err)
		}
		return cmd.Argv, cmd.Env, nil
	}
	argv := make([]string, len(ca.command))
	for i, t := range ca.command {
		if t == nil {
			argv[i] = a.Command[i]
			continue
		}
		v, err := rd.render(t, ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("agent %s: command[%d]: %w", a.Name, i, err)
		}
		argv[i] = v
	}
	return argv, nil, nil
}

// previewCombos stands in for a dynamic matrix at plan time: a dynamic axis holds its
// expression, static axes expand as usual.
func (ca *compiledAgent) previewCombos() []combo {
	if ca.matrixExpr != nil {
		return []combo{{keys: []string{"*"}, vals: map[string]any{"*": pending(ca.matrixExpr.Source())}}}
	}
	axes := make([]axis, len(ca.axes))
	for i, ax := range ca.axes {
		axes[i] = ax
		if ax.expr != nil {
			axes[i].values = []any{pending(ax.expr.Source())}
		}
	}
	return expandMatrix(axes, nil, nil)
}
