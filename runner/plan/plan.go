package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/expr"
)

// Options steer Build.
type Options struct {
	// Routine plans only this routine. A dispatch needs it (or ev.Routine).
	Routine string
	// Inputs are dispatch inputs; they override ev.Inputs.
	Inputs map[string]string
	// Env is the runner's environment for every agent, below the routine's and agent's env.
	Env map[string]string
}

// Build plans what ev starts in cfg. Routines that do not react to the event are listed in
// Plan.Skipped with the reason. When some routine cannot be planned (a bad input, an
// expression that fails on this event's data, a static fan-out over the cap) the error names
// it and the returned plan still holds the routines that planned fine.
func Build(cfg *config.Config, ev *event.Event, opts Options) (*Plan, error) {
	if cfg == nil {
		return nil, errors.New("plan: no config")
	}
	if ev == nil {
		return nil, errors.New("plan: no event")
	}
	p := &Plan{Event: ev, Runs: []*Run{}}
	name := opts.Routine
	if name == "" && ev.Kind == event.KindDispatch {
		name = ev.Routine
		if name == "" {
			return nil, errors.New("plan: a dispatch must name its routine")
		}
	}
	candidates := cfg.Routines
	if name != "" {
		r := cfg.Routine(name)
		if r == nil {
			names := make([]string, len(cfg.Routines))
			for i, r := range cfg.Routines {
				names[i] = r.Name
			}
			return nil, fmt.Errorf("plan: no routine %q in %s (routines: %s)", name, cfg.Dir, strings.Join(names, ", "))
		}
		candidates = []*config.Routine{r}
	}
	payload := eventPayload(ev)
	var errs []error
	for _, r := range candidates {
		mev := ev
		if name != "" && ev.Routine == "" {
			// Options.Routine targets the routine the way ev.Routine would.
			cp := *ev
			cp.Routine = name
			mev = &cp
		}
		ok, why := event.MatchRoutine(r, mev)
		if !ok {
			if ev.Kind == event.KindDispatch {
				errs = append(errs, fmt.Errorf("routine %s cannot be dispatched: %s (add on: dispatch: {})", r.Name, why))
				continue
			}
			p.Skipped = append(p.Skipped, Skip{Routine: r.Name, Reason: why})
			continue
		}
		run, err := buildRun(r, ev, payload, opts)
		if err != nil {
			errs = append(errs, fmt.Errorf("routine %s: %w", r.Name, err))
			continue
		}
		p.Runs = append(p.Runs, run)
	}
	return p, errors.Join(errs...)
}

// eventPayload is the `event` context: the raw payload, or for events built without one the
// normalized event itself.
func eventPayload(ev *event.Event) map[string]any {
	if ev.Payload != nil {
		return ev.Payload
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return map[string]any{}
	}
	var m map[string]any
	if json.Unmarshal(data, &m) != nil {
		return map[string]any{}
	}
	return m
}

// inputs applies the routine's dispatch inputs to the given values: defaults, required,
// options, and no unknown names.
func inputs(r *config.Routine, ev *event.Event, opts Options) (map[string]string, error) {
	if (r.On.Dispatch == nil || len(r.On.Dispatch.Inputs) == 0) && len(ev.Inputs) == 0 && len(opts.Inputs) == 0 {
		return nil, nil // nothing declared, nothing given
	}
	given := map[string]string{}
	maps.Copy(given, ev.Inputs)
	maps.Copy(given, opts.Inputs)
	var decl []*config.Input
	if r.On.Dispatch != nil {
		decl = r.On.Dispatch.Inputs
	}
	out := make(map[string]string, len(decl))
	var errs []error
	known := make([]string, len(decl))
	for i, in := range decl {
		known[i] = in.Name
		v, ok := given[in.Name]
		if !ok {
			if in.Required && in.Default == "" && ev.Kind == event.KindDispatch {
				errs = append(errs, fmt.Errorf("input %s is required", in.Name))
				continue
			}
			v = in.Default
		}
		if len(in.Options) > 0 && (ok || v != "") && !slices.Contains(in.Options, v) {
			errs = append(errs, fmt.Errorf("input %s is %q, want one of %s", in.Name, v, strings.Join(in.Options, ", ")))
			continue
		}
		out[in.Name] = v
	}
	for _, k := range sortedKeys(given) {
		if !slices.Contains(known, k) {
			if len(known) == 0 {
				errs = append(errs, fmt.Errorf("unknown input %s: the routine declares no inputs", k))
			} else {
				errs = append(errs, fmt.Errorf("unknown input %s (inputs: %s)", k, strings.Join(known, ", ")))
			}
		}
	}
	if len(out) == 0 {
		out = nil
	}
	return out, errors.Join(errs...)
}

func buildRun(r *config.Routine, ev *event.Event, payload map[string]any, opts Options) (*Run, error) {
	cr, errs := compileRoutine(r)
	if len(errs) > 0 {
		return nil, errs
	}
	in, err := inputs(r, ev, opts)
	if err != nil {
		return nil, err
	}
	run := &Run{
		Routine:     r.Name,
		File:        r.Pos.File,
		Description: r.Description,
		SHA:         ev.SHA,
		MaxFanOut:   cr.maxFanOut,
		Inputs:      in,
	}
	if r.Budget != nil {
		run.Budget, run.DayBudget = r.Budget.Run, r.Budget.Day
	}
	run.Connectors = slices.Clone(r.Connectors)
	for _, a := range r.Agents {
		run.Connectors = append(run.Connectors, a.Connectors...)
	}
	fork := ev.PullRequest != nil && ev.PullRequest.Fork
	if !fork || (r.On.PullRequest != nil && r.On.PullRequest.ForkSecrets) {
		run.Secrets = slices.Clone(r.Secrets)
	}
	ctx := expr.Context{
		Event:   payload,
		Routine: map[string]any{"name": r.Name, "file": r.Pos.File, "description": r.Description},
		Inputs:  in,
		Env:     opts.Env,
	}
	env := maps.Clone(opts.Env)
	if env == nil && len(cr.env) > 0 {
		env = map[string]string{}
	}
	for _, e := range cr.env {
		v, err := e.t.Render(&ctx)
		if err != nil {
			return nil, err
		}
		env[e.name] = v
	}
	run.Env = env
	ctx.Env = env
	if cr.group != nil {
		g, err := cr.group.Render(&ctx)
		if err != nil {
			return nil, err
		}
		run.Concurrency = &Concurrency{Group: g, CancelInProgress: r.Concurrency.CancelInProgress}
	}
	if run.Publish, err = publish(cr, r, ev, &ctx); err != nil {
		return nil, err
	}
	order, err := topoOrder(r)
	if err != nil {
		return nil, err
	}
	if len(order) > 0 {
		run.Nodes = make([]*Node, 0, len(order))
	}
	for _, i := range order {
		ca := cr.agents[i]
		n, err := buildNode(ca, cr, ctx, run)
		if err != nil {
			return nil, err
		}
		run.Nodes = append(run.Nodes, n)
	}
	return run, nil
}

func publish(cr *compiledRoutine, r *config.Routine, ev *event.Event, ctx *expr.Context) (Publish, error) {
	pub := Publish{Check: r.Publish.Check, Comment: r.Publish.Comment}
	pr := r.Publish.PullRequest
	if pr == nil {
		return pub, nil
	}
	out := &PullRequest{Draft: pr.Draft, Labels: slices.Clone(pr.Labels)}
	var err error
	if out.Title, err = cr.prTitle.Render(ctx); err != nil {
		return pub, err
	}
	if strings.TrimSpace(out.Title) == "" {
		out.Title = "agents: " + r.Name
	}
	if out.Body, err = cr.prBody.Render(ctx); err != nil {
		return pub, err
	}
	key := ""
	if cr.prBranch != nil {
		if key, err = cr.prBranch.Render(ctx); err != nil {
			return pub, err
		}
	}
	if strings.TrimSpace(key) == "" {
		key = defaultKey(ev)
	}
	out.Key = branchSafe(key)
	pub.PullRequest = out
	return pub, nil
}

// defaultKey is the PR branch key when the routine names none: one PR per pull request,
// otherwise one per branch.
func defaultKey(ev *event.Event) string {
	switch {
	case ev.PullRequest != nil && ev.PullRequest.Number > 0:
		return "pr-" + strconv.Itoa(ev.PullRequest.Number)
	case ev.Comment != nil && ev.Comment.OnPullRequest && ev.Comment.IssueNumber > 0:
		return "pr-" + strconv.Itoa(ev.Comment.IssueNumber)
	case ev.Branch != "":
		return ev.Branch
	}
	return "default"
}

// branchSafe keeps a key usable inside a git branch name (agents/<routine>/<key>).
func branchSafe(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.TrimSpace(s) {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._/-", r)
		if !ok {
			if !dash {
				b.WriteByte('-')
			}
			dash = true
			continue
		}
		b.WriteRune(r)
		dash = false
	}
	out := strings.Trim(b.String(), "-./")
	for strings.Contains(out, "..") {
		out = strings.ReplaceAll(out, "..", ".")
	}
	for strings.Contains(out, "--") {
		out = strings.ReplaceAll(out, "--", "-")
	}
	for strings.Contains(out, "//") {
		out = strings.ReplaceAll(out, "//", "/")
	}
	out = strings.TrimSuffix(out, ".lock")
	if out == "" {
		return "default"
	}
	return out
}

// topoOrder returns agent indexes so every agent comes after its needs; among agents that are
// ready together, file order wins.
func topoOrder(r *config.Routine) ([]int, error) {
	index := make(map[string]int, len(r.Agents))
	for i, a := range r.Agents {
		index[a.Name] = i
	}
	indeg := make([]int, len(r.Agents))
	users := make([][]int, len(r.Agents))
	for i, a := range r.Agents {
		for _, n := range a.Needs {
			j, ok := index[n]
			if !ok {
				return nil, fmt.Errorf("agent %s needs %s, which does not exist", a.Name, n)
			}
			indeg[i]++
			users[j] = append(users[j], i)
		}
	}
	done := make([]bool, len(r.Agents))
	order := make([]int, 0, len(r.Agents))
	for len(order) < len(r.Agents) {
		next := -1
		for i := range r.Agents {
			if !done[i] && indeg[i] == 0 {
				next = i
				break
			}
		}
		if next < 0 {
			var cyc []string
			for i, a := range r.Agents {
				if !done[i] {
					cyc = append(cyc, a.Name)
				}
			}
			return nil, fmt.Errorf("agents %s need each other in a cycle", strings.Join(cyc, ", "))
		}
		done[next] = true
		order = append(order, next)
		for _, u := range users[next] {
			indeg[u]--
		}
	}
	return order, nil
}

func buildNode(ca *compiledAgent, cr *compiledRoutine, ctx expr.Context, run *Run) (*Node, error) {
	return buildNodeAt(ca, cr, ctx, run, "")
}

// buildNodeAt builds a node whose instances are named under prefix (a workflow's, see
// BuildWorkflow; "" for a routine's own agents).
func buildNodeAt(ca *compiledAgent, cr *compiledRoutine, ctx expr.Context, run *Run, prefix string) (*Node, error) {
	a := ca.a
	n := &Node{
		Agent:           a.Name,
		Needs:           slices.Clone(a.Needs),
		If:              a.If,
		Dynamic:         ca.dynamic,
		MaxParallel:     a.MaxParallel,
		FailFast:        a.FailFast,
		ContinueOnError: a.ContinueOnError,
		Replicas:        a.Replicas,
		Quorum:          a.Quorum,
		Vote:            a.Vote,
		Judge:           a.Judge,
		Changes:         a.Changes,
	}
	if n.Changes == "" {
		n.Changes = config.ChangesDiscard
	}
	n.Orchestrate = orchestration(a, run)
	n.compiled = &compiledNode{ca: ca, base: ctx, maxFanOut: cr.maxFanOut, prefix: prefix, orch: n.Orchestrate}
	if len(run.Secrets) > 0 {
		for _, s := range ca.secrets {
			if slices.Contains(run.Secrets, s) {
				n.compiled.secrets = append(n.compiled.secrets, s)
				if slices.Contains(ca.keySecrets, s) {
					n.compiled.keySecrets = append(n.compiled.keySecrets, s)
				}
			}
		}
	}
	insts, err := n.compiled.expand(nil, ca.dynamic)
	if err != nil {
		return nil, err
	}
	n.Instances = insts
	return n, nil
}
