package plan

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"weak"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/preset"
	"github.com/agentrunner/agentrunner/runner/expr"
)

// DefaultMaxFanOut caps one agent's instances when the routine sets no max-fan-out.
const DefaultMaxFanOut = 256

// compiledRoutine is every expression of one routine, compiled once.
// compiledRoutine must not point at its routine: compiledCache holds it only while the
// routine is reachable from elsewhere.
type compiledRoutine struct {
	env       []envTemplate
	group     *expr.Template
	prTitle   *expr.Template
	prBody    *expr.Template
	prBranch  *expr.Template
	agents    []*compiledAgent // in r.Agents order
	maxFanOut int
}

type envTemplate struct {
	name string
	t    *expr.Template
}

// compiledAgent is one agent's expressions and the facts planning derives from them.
type compiledAgent struct {
	a          *config.Agent
	preset     *preset.Preset
	prompt     *expr.Template
	cond       *expr.Condition
	command    []*expr.Template
	env        []envTemplate
	with       map[string]*expr.Template // string values of with:
	axes       []axis
	matrixExpr *expr.Template
	// dynamic: the instances depend on needs.* (matrix, prompt, command, env or with).
	dynamic        bool
	dynamicMatrix  bool
	secrets        []string // agent secrets ∩ routine secrets, plus the preset's key if declared
	keySecrets     []string // the preset's keys the agent did not ask for by name
	apis           []string // providers of the model APIs the preset calls with these with: options
	connectors     []string // the connectors the agent may use: the routine's, then its own
	staticCombos   []combo  // expanded static matrix (nil without matrix)
	staticComboErr error
}

type axis struct {
	name   string
	values []any
	expr   *expr.Template
}

// Compile compiles every expression of every routine and checks what planning can check
// without an event: contexts used where they exist, needs.<agent> read only from declared
// needs, secrets declared by the routine, static fan-out within the cap. It reports every
// problem, sorted by position.
func Compile(cfg *config.Config) config.Errors {
	var errs config.Errors
	if cfg == nil {
		return config.Errors{config.Errorf(config.Pos{}, "no config")}
	}
	for _, r := range cfg.Routines {
		_, es := compileRoutine(r)
		errs = append(errs, es...)
	}
	sortErrors(errs)
	return errs
}

func sortErrors(errs config.Errors) {
	slices.SortStableFunc(errs, func(a, b *config.Error) int {
		return cmp.Or(strings.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
}

// lineOf is a field position for expression errors: config positions are the keys', so a
// column inside the value is unknown.
func lineOf(p config.Pos) config.Pos { return config.Pos{File: p.File, Line: p.Line} }

// at is where the text of the field at path starts (config's ValuePos), so an expression's
// error points into it; the line of owner when the field's position is not known (it came
// from defaults, or the config was built in code).
func at(valuePos map[string]config.Pos, path string, owner config.Pos) config.Pos {
	if p, ok := valuePos[path]; ok {
		return p
	}
	return lineOf(owner)
}

type compiler struct {
	errs config.Errors
}

func (c *compiler) errorf(pos config.Pos, format string, args ...any) {
	c.errs = append(c.errs, config.Errorf(pos, format, args...))
}

// add records a compile error from package expr, prefixed with where it is in the routine.
func (c *compiler) add(where string, err error) {
	var ce *config.Error
	if errors.As(err, &ce) {
		c.errs = append(c.errs, &config.Error{Pos: ce.Pos, Msg: where + ": " + ce.Msg})
		return
	}
	c.errs = append(c.errs, &config.Error{Msg: where + ": " + err.Error()})
}

// template compiles src and rejects contexts that do not exist where it is used. where names
// the field in messages; it is called only when there is a problem to report, so compiling
// builds no names.
func (c *compiler) template(src string, pos config.Pos, where func() string, forbid ...string) *expr.Template {
	t, err := expr.CompileTemplate(src, pos)
	if err != nil {
		c.add(where(), err)
		return nil
	}
	for _, f := range forbid {
		if t.Uses(f) {
			c.errorf(pos, "%s: %s is not available here (%s)", where(), f, whyNot(f))
			return nil
		}
	}
	return t
}

// named is template's where for a field whose name is fixed.
func named(name string) func() string { return func() string { return name } }

func whyNot(ctx string) string {
	switch ctx {
	case expr.CtxNeeds:
		return "it is resolved before any agent runs"
	case expr.CtxMatrix:
		return "it is resolved once for the whole run, not per matrix instance"
	case expr.CtxEnv:
		return "env values cannot read env"
	}
	return "not a context here"
}

// compiledCache keeps what compileRoutine made for a loaded routine, so that validating a
// config and then planning it (what `runner exec` and the daemon do) compiles it once. Loaded
// routines are never changed, so the pointer is the key. The key is weak and an entry is
// dropped when its routine is collected: a strong cache would keep every config the daemon
// ever planned alive, and the garbage collector would scan them all on every cycle.
var compiledCache sync.Map // weak.Pointer[config.Routine] → compiledEntry

type compiledEntry struct {
	cr   *compiledRoutine
	errs config.Errors
}

func compileRoutine(r *config.Routine) (*compiledRoutine, config.Errors) {
	key := weak.Make(r)
	if e, ok := compiledCache.Load(key); ok {
		e := e.(compiledEntry)
		return e.cr, e.errs
	}
	cr, errs := compileRoutineUncached(r)
	if _, loaded := compiledCache.LoadOrStore(key, compiledEntry{cr, errs}); !loaded {
		runtime.AddCleanup(r, func(k weak.Pointer[config.Routine]) { compiledCache.Delete(k) }, key)
	}
	return cr, errs
}

func compileRoutineUncached(r *config.Routine) (*compiledRoutine, config.Errors) {
	c := &compiler{}
	cr := &compiledRoutine{maxFanOut: r.MaxFanOut}
	if cr.maxFanOut <= 0 {
		cr.maxFanOut = DefaultMaxFanOut
	}
	rpos := lineOf(r.Pos)
	for _, k := range sortedKeys(r.Env) {
		if t := c.template(r.Env[k], at(r.ValuePos, "env."+k, rpos), func() string { return "env." + k }, expr.CtxNeeds, expr.CtxMatrix, expr.CtxEnv); t != nil {
			cr.env = append(cr.env, envTemplate{k, t})
		}
	}
	if r.Concurrency != nil {
		cr.group = c.template(r.Concurrency.Group, at(r.ValuePos, "concurrency.group", r.Concurrency.Pos), named("concurrency.group"), expr.CtxNeeds, expr.CtxMatrix)
	}
	if pr := r.Publish.PullRequest; pr != nil {
		title, body, branch := "publish.pull-request.title", "publish.pull-request.body", "publish.pull-request.branch"
		cr.prTitle = c.template(pr.Title, at(r.ValuePos, title, pr.Pos), named(title), expr.CtxNeeds, expr.CtxMatrix)
		cr.prBody = c.template(pr.Body, at(r.ValuePos, body, pr.Pos), named(body), expr.CtxNeeds, expr.CtxMatrix)
		if pr.Branch != "" {
			cr.prBranch = c.template(pr.Branch, at(r.ValuePos, branch, pr.Pos), named(branch), expr.CtxNeeds, expr.CtxMatrix)
		}
	}
	for _, a := range r.Agents {
		cr.agents = append(cr.agents, c.agent(r, a, cr.maxFanOut))
	}
	return cr, c.errs
}

func (c *compiler) agent(r *config.Routine, a *config.Agent, maxFanOut int) *compiledAgent {
	ca := &compiledAgent{a: a}
	pos := lineOf(a.Pos)
	where := func(field string) string { return fmt.Sprintf("agent %s: %s", a.Name, field) }
	// checkNeeds rejects needs.<x> for an x the agent does not wait for: its value would not
	// exist yet when the agent starts.
	checkNeeds := func(field string, pos config.Pos, names []string) {
		for _, n := range names {
			if !slices.Contains(a.Needs, n) {
				c.errorf(pos, "%s reads needs.%s, but %s is not in the agent's needs: add it to needs: [...]", where(field), n, n)
			}
		}
	}
	usesNeeds := func(t *expr.Template) bool { return t != nil && t.Uses(expr.CtxNeeds) }

	if a.Uses != "" {
		p, ok := preset.Get(a.Uses)
		if !ok {
			c.errorf(pos, "%s: unknown preset %q (known: %s)", where("uses"), a.Uses, strings.Join(preset.Names(), ", "))
		}
		ca.preset = p
	}
	if a.Prompt != "" {
		ppos := at(a.ValuePos, "prompt", a.Pos)
		if ca.prompt = c.template(a.Prompt, ppos, func() string { return where("prompt") }); ca.prompt != nil {
			checkNeeds("prompt", ppos, ca.prompt.Needs())
			ca.dynamic = ca.dynamic || usesNeeds(ca.prompt)
		}
	}
	ipos := at(a.ValuePos, "if", a.Pos)
	cond, err := expr.CompileCondition(a.If, ipos)
	if err != nil {
		c.add(where("if"), err)
	} else {
		ca.cond = cond
		checkNeeds("if", ipos, cond.Needs())
		if cond.Uses(expr.CtxMatrix) {
			c.errorf(ipos, "%s: matrix is not available in if: (the condition decides whether the agent runs at all)", where("if"))
		}
	}
	if len(a.Command) > 0 {
		ca.command = make([]*expr.Template, 0, len(a.Command))
	}
	for i, el := range a.Command {
		field := "command[" + strconv.Itoa(i) + "]"
		epos := at(a.ValuePos, field, a.Pos)
		t := c.template(el, epos, func() string { return where(field) })
		if t != nil {
			checkNeeds("command", epos, t.Needs())
			ca.dynamic = ca.dynamic || usesNeeds(t)
		}
		ca.command = append(ca.command, t)
	}
	for _, k := range sortedKeys(a.Env) {
		epos := at(a.ValuePos, "env."+k, a.Pos)
		if t := c.template(a.Env[k], epos, func() string { return where("env." + k) }); t != nil {
			checkNeeds("env", epos, t.Needs())
			ca.dynamic = ca.dynamic || usesNeeds(t)
			ca.env = append(ca.env, envTemplate{k, t})
		}
	}
	for _, k := range sortedKeys(a.With) {
		s, ok := a.With[k].(string)
		if !ok || !strings.Contains(s, "${{") {
			continue
		}
		wpos := at(a.ValuePos, "with."+k, a.Pos)
		if t := c.template(s, wpos, func() string { return where("with." + k) }); t != nil {
			checkNeeds("with", wpos, t.Needs())
			ca.dynamic = ca.dynamic || usesNeeds(t)
			if ca.with == nil {
				ca.with = map[string]*expr.Template{}
			}
			ca.with[k] = t
		}
	}
	if m := a.Matrix; m != nil {
		mpos := lineOf(m.Pos)
		if m.Expr != "" {
			if ca.matrixExpr = c.template(m.Expr, mpos, func() string { return where("matrix") }, expr.CtxMatrix); ca.matrixExpr != nil {
				checkNeeds("matrix", mpos, ca.matrixExpr.Needs())
			}
			ca.dynamicMatrix = true
		}
		ca.axes = make([]axis, 0, len(m.Axes))
		for _, ax := range m.Axes {
			x := axis{name: ax.Name, values: ax.Values}
			if ax.Expr != "" {
				apos := lineOf(ax.Pos)
				if x.expr = c.template(ax.Expr, apos, func() string { return where("matrix." + ax.Name) }, expr.CtxMatrix); x.expr != nil && len(x.expr.Needs()) > 0 {
					checkNeeds("matrix."+ax.Name, apos, x.expr.Needs())
				}
				ca.dynamicMatrix = true
			}
			ca.axes = append(ca.axes, x)
		}
		if !ca.dynamicMatrix {
			ca.staticCombos = expandMatrix(ca.axes, m.Include, m.Exclude)
			if n := len(ca.staticCombos) * replicas(a); n > maxFanOut {
				ca.staticComboErr = fanOutError(a, len(ca.staticCombos), n, maxFanOut)
				c.errorf(lineOf(m.Pos), "%s", ca.staticComboErr)
			}
		}
		ca.dynamic = ca.dynamic || ca.dynamicMatrix
	} else if n := replicas(a); n > maxFanOut {
		ca.staticComboErr = fanOutError(a, 1, n, maxFanOut)
		c.errorf(pos, "%s", ca.staticComboErr)
	}

	// Secrets: what the agent lists, plus its preset's API key, all only if the routine
	// declares them; the routine's list is the runner's allow-list.
	for _, s := range a.Secrets {
		if !slices.Contains(r.Secrets, s) {
			c.errorf(pos, "%s: secret %s is not declared in the routine's secrets: [...]; add it there", where("secrets"), s)
			continue
		}
		ca.secrets = appendUnique(ca.secrets, s)
	}
	if ca.preset != nil {
		for s := range presetKeys(ca.preset, a.With) {
			if slices.Contains(r.Secrets, s) {
				ca.secrets = appendUnique(ca.secrets, s)
				if !slices.Contains(a.Secrets, s) {
					ca.keySecrets = appendUnique(ca.keySecrets, s)
				}
			}
		}
		sort.Strings(ca.keySecrets)
		for _, api := range ca.preset.APIs(a.With) {
			ca.apis = appendUnique(ca.apis, string(api.Provider))
		}
	}
	sort.Strings(ca.secrets)
	for _, cn := range r.AgentConnectors(a) {
		ca.connectors = append(ca.connectors, cn.Name)
	}
	return ca
}

// presetKeys yields the secret names a preset's API key may be declared under.
func presetKeys(p *preset.Preset, with map[string]any) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, k := range p.KeyEnv {
			if !yield(k) {
				return
			}
		}
		for _, api := range p.APIs(with) {
			if api.Secret != "" && !yield(api.Secret) {
				return
			}
			for _, k := range api.KeyEnv {
				if !yield(k) {
					return
				}
			}
		}
	}
}

func replicas(a *config.Agent) int {
	if a.Replicas > 1 {
		return a.Replicas
	}
	return 1
}

func fanOutError(a *config.Agent, combos, total, limit int) error {
	if replicas(a) > 1 {
		return fmt.Errorf("agent %s fans out to %d instances (%d matrix combinations × %d replicas), over the routine's max-fan-out of %d; "+
			"raise max-fan-out or split the work", a.Name, total, combos, replicas(a), limit)
	}
	return fmt.Errorf("agent %s fans out to %d instances, over the routine's max-fan-out of %d; raise max-fan-out or split the work",
		a.Name, total, limit)
}

func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
