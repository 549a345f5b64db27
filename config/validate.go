package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/agentrunner/agentrunner/preset"
	"gopkg.in/yaml.v3"
)

// validate checks what needs more than one key of a routine, then merges the defaults.
// Positions come from the keys the decoder recorded.
func (d *decoder) validate(r *Routine) {
	if !isRoutineName(r.Name) {
		p := r.Pos
		if k, ok := d.key(r, "name"); ok {
			p = d.pos(k.v)
		}
		d.errorAt(p, "routine name %q is not valid: use letters, digits, '.', '_' and '-' (it appears in branch names and URLs); set `name:` or rename the file", r.Name)
	}
	d.checkFilters(r)
	d.checkInputs(r)
	d.checkConnectors(r)

	names := make([]string, 0, len(r.Agents))
	for _, a := range r.Agents {
		names = append(names, a.Name)
	}
	for _, a := range r.Agents {
		d.checkAgent(r, a, names)
	}
	d.checkCycles(r)
	d.recordValuePos(r)

	if r.Publish.PullRequest != nil {
		// An orchestrator's workflow may keep changes: its agents' are the run's.
		keeps := slices.ContainsFunc(r.Agents, func(a *Agent) bool { return a.Changes == ChangesKeep || a.Orchestrate != nil })
		if !keeps {
			d.errorAt(r.Publish.PullRequest.Pos, "publish.pull-request has no changes to carry: no agent sets `changes: keep` (or orchestrates); add it to the agents whose diff belongs in the pull request")
		}
	}
	if r.On.Webhook != nil && r.On.Webhook.Secret != "" && !isEnvName(r.On.Webhook.Secret) {
		k, _ := d.key(r.On.Webhook, "secret")
		d.errorf(k.v, "on.webhook.secret %q is not a valid secret name (letters, digits and _)", r.On.Webhook.Secret)
	}
	d.applyDefaults(r)
}

func (d *decoder) checkFilters(r *Routine) {
	type filter struct {
		t         any
		pos, neg  string
		posV      []string
		negV      []string
		eventName string
	}
	fs := make([]filter, 0, 5) // at most 5, so it stays on the stack
	if p := r.On.Push; p != nil {
		fs = append(fs,
			filter{p, "branches", "branches-ignore", p.Branches, p.BranchesIgnore, "push"},
			filter{p, "tags", "tags-ignore", p.Tags, p.TagsIgnore, "push"},
			filter{p, "paths", "paths-ignore", p.Paths, p.PathsIgnore, "push"})
	}
	if p := r.On.PullRequest; p != nil {
		fs = append(fs,
			filter{p, "branches", "branches-ignore", p.Branches, p.BranchesIgnore, "pull_request"},
			filter{p, "paths", "paths-ignore", p.Paths, p.PathsIgnore, "pull_request"})
	}
	for _, f := range fs {
		kp, hasPos := d.key(f.t, f.pos)
		_, hasNeg := d.key(f.t, f.neg)
		if hasPos && hasNeg {
			d.errorf(kp.k, "on.%s: use %s or %s, not both; to exclude inside %s, add a pattern starting with '!'", f.eventName, f.pos, f.neg, f.pos)
			continue
		}
		if hasPos && len(f.posV) > 0 && !slices.ContainsFunc(f.posV, func(s string) bool { return !strings.HasPrefix(s, "!") }) {
			d.errorf(kp.v, "on.%s.%s has only '!' patterns, so it matches nothing; add a pattern to include first (like \"**\"), or use %s", f.eventName, f.pos, f.neg)
		}
	}
}

func (d *decoder) checkInputs(r *Routine) {
	if r.On.Dispatch == nil {
		return
	}
	for _, in := range r.On.Dispatch.Inputs {
		if len(in.Options) == 0 {
			continue
		}
		if k, ok := d.key(in, "default"); ok && !slices.Contains(in.Options, in.Default) {
			d.errorf(k.v, "input %q: default %q is not one of its options (%s)", in.Name, in.Default, strings.Join(in.Options, ", "))
		}
	}
}

func (d *decoder) checkAgent(r *Routine, a *Agent, names []string) {
	where := label{"agent", a.Name}
	keys := d.keys[a] // what the agent's mapping sets
	ku, hasUses := keys.get("uses")
	kc, hasCommand := keys.get("command")
	switch {
	case hasUses && hasCommand:
		d.errorf(kc.k, "%s sets both uses and command; keep one: uses runs a preset (%s), command runs any argv", where, strings.Join(preset.Names(), ", "))
	case !hasUses && !hasCommand && d.decoded(a):
		d.errorAt(a.Pos, "%s needs `uses: <preset>` (%s) or `command: [argv...]`", where, strings.Join(preset.Names(), ", "))
	}
	if kw, ok := keys.get("with"); ok && !hasUses {
		d.errorf(kw.k, "%s: with: sets preset options and needs uses:; a command agent takes its options in its argv", where)
	}
	if hasUses && a.Uses != "" {
		if _, ok := keys.get("prompt"); !ok {
			d.errorf(ku.k, "%s uses %s but has no prompt; add `prompt: \"...\"` with the task", where, a.Uses)
		}
	}

	if kn, ok := keys.get("needs"); ok {
		items := d.resolveSeq(kn.v)
		for i, n := range a.Needs {
			at := kn.v
			if i < len(items) {
				at = items[i]
			}
			switch {
			case n == a.Name:
				d.errorf(at, "needs cycle: %s -> %s; an agent cannot need itself", a.Name, a.Name)
			case r.Agent(n) == nil:
				d.errorf(at, "%s needs %q, but there is no agent %q in this routine%s", where, n, n, didYouMean(n, names))
			case slices.Contains(a.Needs[:i], n):
				d.errorf(at, "%s lists %q twice in needs", where, n)
			}
		}
	}

	d.checkListedSecrets(r, where, a, "secrets", a.Secrets)
	d.checkAgentConnectors(r, a, keys)

	kq, hasQuorum := keys.get("quorum")
	kv, hasVote := keys.get("vote")
	kj, hasJudge := keys.get("judge")
	replicas := max(a.Replicas, 1)
	if hasQuorum {
		if a.Quorum > replicas {
			d.errorf(kq.v, "%s: quorum %d is more than its %d replica(s); set replicas to at least %d, or lower the quorum", where, a.Quorum, replicas, a.Quorum)
		}
		if !hasVote && !hasJudge {
			d.errorf(kq.k, "%s: quorum needs something to agree on: set `vote: <outputs key>`, or `judge: <agent>`", where)
		}
	}
	if hasVote && replicas < 2 {
		d.errorf(kv.k, "%s: vote needs replicas: 2 or more to have something to vote on", where)
	}
	if hasVote && len(a.Outputs) > 0 && !slices.Contains(a.Outputs, a.Vote) {
		d.errorf(kv.v, "%s votes on %q, which is not in its outputs (%s)", where, a.Vote, strings.Join(a.Outputs, ", "))
	}
	if hasJudge {
		switch {
		case a.Judge == a.Name:
			d.errorf(kj.v, "%s cannot judge its own replicas; name another agent", where)
		case r.Agent(a.Judge) == nil:
			d.errorf(kj.v, "%s: judge %q is not an agent of this routine%s", where, a.Judge, didYouMean(a.Judge, names))
		}
		if replicas < 2 {
			d.errorf(kj.k, "%s: judge needs replicas: 2 or more to have something to judge", where)
		}
	}

	if a.Orchestrate != nil {
		ko, _ := keys.get("orchestrate")
		if a.Matrix != nil || a.Replicas > 1 {
			d.errorf(ko.k, "%s orchestrates: it runs once and writes one workflow, so it cannot have a matrix or replicas; fan out inside the workflow it writes", where)
		}
		if w := d.workflow; w != nil && w.Depth <= 1 {
			d.errorf(ko.k, "%s orchestrates again, but the envelope's max-depth allows no further level of orchestration", where)
		}
	}

	if _, ok := keys.get("image"); !ok && r.Defaults.Image == "" && d.decoded(a) {
		d.errorAt(a.Pos, "%s has no container image: set `image:` on the agent, or `defaults: {image: ...}` for the whole routine", where)
	}
}

// resolveSeq returns a list node's items (a single scalar is its own item).
func (d *decoder) resolveSeq(n *yaml.Node) []*yaml.Node {
	r := d.resolve(n)
	if r == nil {
		return nil
	}
	if r.Kind == yaml.SequenceNode {
		return r.Content
	}
	return []*yaml.Node{n}
}

// checkCycles reports each needs cycle once, naming it: "needs cycle: a -> b -> a".
func (d *decoder) checkCycles(r *Routine) {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	reported := map[string]bool{}
	var visit func(a *Agent)
	visit = func(a *Agent) {
		color[a.Name] = grey
		stack = append(stack, a.Name)
		for _, n := range a.Needs {
			b := r.Agent(n)
			if b == nil || b == a {
				continue // reported by checkAgent
			}
			switch color[n] {
			case white:
				visit(b)
			case grey:
				i := slices.Index(stack, n)
				cycle := append(slices.Clone(stack[i:]), n)
				members := slices.Clone(cycle[:len(cycle)-1])
				slices.Sort(members)
				key := strings.Join(members, ",")
				if !reported[key] {
					reported[key] = true
					first := r.Agent(cycle[0])
					d.errorAt(first.Pos, "needs cycle: %s; an agent cannot (indirectly) need itself: remove one of these needs", strings.Join(cycle, " -> "))
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[a.Name] = black
	}
	for _, a := range r.Agents {
		if color[a.Name] == white {
			visit(a)
		}
	}
}

// applyDefaults merges defaults into every agent, so the planner sees concrete values.
func (d *decoder) applyDefaults(r *Routine) {
	def := &r.Defaults
	if _, ok := d.key(&r.Publish, "check"); !ok {
		r.Publish.Check = true
	}
	if pr := r.Publish.PullRequest; pr != nil && pr.Title == "" {
		pr.Title = r.Name
	}
	if r.MaxFanOut == 0 {
		r.MaxFanOut = DefaultMaxFanOut
	}
	for _, a := range r.Agents {
		a.Image = firstNonEmpty(a.Image, def.Image)
		a.PullPolicy = firstNonEmpty(a.PullPolicy, def.PullPolicy, DefaultPullPolicy)
		a.User = firstNonEmpty(a.User, def.User)
		a.Changes = firstNonEmpty(a.Changes, ChangesDiscard)
		if a.Timeout == 0 {
			a.Timeout = def.Timeout
		}
		if a.Timeout == 0 {
			a.Timeout = DefaultTimeout
		}
		if a.Resources.CPUs == 0 {
			a.Resources.CPUs = def.Resources.CPUs
		}
		if a.Resources.CPUs == 0 {
			a.Resources.CPUs = DefaultCPUs
		}
		if a.Resources.Memory == 0 {
			a.Resources.Memory = def.Resources.Memory
		}
		if a.Resources.Memory == 0 {
			a.Resources.Memory = DefaultMemory
		}
		if a.Resources.Pids == 0 {
			a.Resources.Pids = def.Resources.Pids
		}
		if a.Resources.Pids == 0 {
			a.Resources.Pids = DefaultPids
		}
		if a.Resources.Disk == 0 {
			a.Resources.Disk = def.Resources.Disk
		}
		if a.Limits.ChangedFile == 0 {
			a.Limits.ChangedFile = def.Limits.ChangedFile
		}
		if a.Limits.Patch == 0 {
			a.Limits.Patch = def.Limits.Patch
		}
		if o := a.Orchestrate; o != nil {
			if len(o.Images) == 0 {
				o.Images = []string{a.Image}
			}
			o.MaxAgents = cmp.Or(o.MaxAgents, DefaultOrchestrateMaxAgents)
			o.MaxInstances = cmp.Or(o.MaxInstances, DefaultOrchestrateMaxInstances)
			o.MaxDepth = cmp.Or(o.MaxDepth, DefaultOrchestrateMaxDepth)
			o.Timeout = cmp.Or(o.Timeout, DefaultOrchestrateTimeout)
			if o.Retries < 0 {
				o.Retries = DefaultOrchestrateRetries
			}
		}
		if a.Network.Mode == "" {
			if def.Network != nil {
				a.Network = *def.Network
				a.Network.Allow = slices.Clone(def.Network.Allow)
			} else {
				a.Network = Network{Pos: a.Pos, Mode: NetworkNone}
			}
		}
	}
	applyConnectorDefaults(r)
}

// firstNonEmpty returns the first non-empty string.
func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// recordValuePos fills the ValuePos of r and its agents from the decoded mappings.
func (d *decoder) recordValuePos(r *Routine) {
	r.ValuePos = map[string]Pos{}
	d.mappingValuePos(r.ValuePos, r, "env")
	if r.Concurrency != nil {
		d.scalarValuePos(r.ValuePos, r.Concurrency, "group", "concurrency.group")
	}
	if pr := r.Publish.PullRequest; pr != nil {
		for _, k := range []string{"title", "body", "branch"} {
			d.scalarValuePos(r.ValuePos, pr, k, "publish.pull-request."+k)
		}
	}
	for _, a := range r.Agents {
		a.ValuePos = map[string]Pos{}
		d.scalarValuePos(a.ValuePos, a, "prompt", "prompt")
		d.scalarValuePos(a.ValuePos, a, "if", "if")
		if kv, ok := d.key(a, "command"); ok && kv.v.Kind == yaml.SequenceNode {
			for i, el := range kv.v.Content {
				a.ValuePos["command["+strconv.Itoa(i)+"]"] = d.textPos(el)
			}
		}
		d.mappingValuePos(a.ValuePos, a, "env")
		d.mappingValuePos(a.ValuePos, a, "with")
	}
}

func (d *decoder) scalarValuePos(into map[string]Pos, t any, key, path string) {
	if kv, ok := d.key(t, key); ok {
		into[path] = d.textPos(kv.v)
	}
}

// mappingValuePos records the position of each value of the mapping under key, as key.NAME.
func (d *decoder) mappingValuePos(into map[string]Pos, t any, key string) {
	kv, ok := d.key(t, key)
	if !ok || kv.v.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(kv.v.Content); i += 2 {
		into[key+"."+kv.v.Content[i].Value] = d.textPos(kv.v.Content[i+1])
	}
}

// textPos is where a scalar's text starts: past the opening quote of a quoted one. A block
// scalar (| or >) keeps the position of its indicator; its text starts on the next line.
func (d *decoder) textPos(n *yaml.Node) Pos {
	p := d.pos(n)
	if n.Style == yaml.DoubleQuotedStyle || n.Style == yaml.SingleQuotedStyle {
		p.Col++
	}
	return p
}
