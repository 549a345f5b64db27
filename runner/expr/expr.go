// Package expr owns `${{ … }}` expressions: GitHub Actions syntax (single-quoted strings,
// ==, !=, &&, ||, !, <, >, property access and index, contains/startsWith/endsWith/format/join/
// toJSON/fromJSON and the status functions) compiled once with expr-lang/expr and evaluated many
// times against a Context (event, routine, inputs, matrix, needs, env). Secrets are not a
// context: they reach agents only as environment variables, never through text.
//
// It knows nothing about routines or plans; callers hand it source text, a config position for
// errors, and the values of the contexts.
package expr

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/agentrunner/agentrunner/config"
)

// Context names, as expressions spell them.
const (
	CtxEvent   = "event"
	CtxRoutine = "routine"
	CtxInputs  = "inputs"
	CtxMatrix  = "matrix"
	CtxNeeds   = "needs"
	CtxEnv     = "env"
)

// Context bits, for sets of contexts (what an expression reads).
const (
	bitEvent uint8 = 1 << iota
	bitRoutine
	bitInputs
	bitMatrix
	bitNeeds
	bitEnv
)

var contextBits = map[string]uint8{
	CtxEvent: bitEvent, CtxRoutine: bitRoutine, CtxInputs: bitInputs, CtxMatrix: bitMatrix, CtxNeeds: bitNeeds, CtxEnv: bitEnv,
}

// Context is what expressions read. Nil maps are empty contexts; a missing property is null.
type Context struct {
	// Event is the raw event payload.
	Event map[string]any
	// Routine has name and file.
	Routine map[string]any
	Inputs  map[string]string
	Matrix  map[string]any
	Needs   map[string]Need
	Env     map[string]string
	// Status drives success(), failure() and cancelled(); nil means every need succeeded.
	Status *Status
}

// Need is one finished agent as `needs.<agent>` shows it. For a fanned-out agent Outputs is
// the list of every instance's outputs.
type Need struct {
	Result  string
	Outputs any
	Report  string
	Counts  map[string]int
}

// Status is the outcome of a node's needs as the status functions see it.
type Status struct {
	Success   bool // every need succeeded
	Failure   bool // some need failed or missed its quorum
	Cancelled bool // the run was cancelled
}

// vars is the variables for expressions that read the contexts in refs (contextBits) and,
// with status set, call status functions. Only those are built: an expression can name no
// other context (the patcher rejects unknown names), and copying env, inputs and needs for
// every rendered template would dominate planning. whole says which contexts are read as a
// whole value rather than only through properties (see stringContext). Give the map back
// with releaseVars.
func (c *Context) vars(refs, whole uint8, status bool) map[string]any {
	m := varsPool.Get().(map[string]any)
	if status {
		st := Status{Success: true}
		if c.Status != nil {
			st = *c.Status
		}
		m[varSuccess] = st.Success
		m[varFailure] = st.Failure
		m[varCancelled] = st.Cancelled
	}
	if refs&bitEvent != 0 {
		m[CtxEvent] = orEmpty(c.Event)
	}
	if refs&bitRoutine != 0 {
		m[CtxRoutine] = orEmpty(c.Routine)
	}
	if refs&bitInputs != 0 {
		m[CtxInputs] = stringContext(c.Inputs, whole&bitInputs != 0)
	}
	if refs&bitMatrix != 0 {
		m[CtxMatrix] = orEmpty(c.Matrix)
	}
	if refs&bitEnv != 0 {
		m[CtxEnv] = stringContext(c.Env, whole&bitEnv != 0)
	}
	if refs&bitNeeds == 0 {
		return m
	}
	needs := make(map[string]any, len(c.Needs))
	for name, n := range c.Needs {
		counts := make(map[string]any, len(n.Counts))
		for k, v := range n.Counts {
			counts[k] = v
		}
		needs[name] = map[string]any{"result": n.Result, "outputs": n.Outputs, "report": n.Report, "counts": counts}
	}
	m[CtxNeeds] = needs
	return m
}

// varsPool recycles the maps vars builds, one per evaluation otherwise. Only the map itself is
// recycled, never the context values in it, and no result can refer to it: expressions
// cannot name it (the patcher rejects $env).
var varsPool = sync.Pool{New: func() any { return make(map[string]any, 8) }}

// releaseVars gives a map from vars back once its expressions have run; nil is ignored.
func releaseVars(m map[string]any) {
	if m == nil {
		return
	}
	clear(m)
	varsPool.Put(m)
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// stringContext is a map[string]string context (env, inputs) as expressions see it. Read
// only through properties (env.NAME), the map serves as it is: property access (lookup)
// reads it exactly as it reads a map[string]any, and no copy is made for every render. Read
// as a whole value (toJSON(env), contains(inputs, 'x')), it is copied to the map[string]any
// that the functions expect.
func stringContext(m map[string]string, whole bool) any {
	if whole {
		return stringMap(m)
	}
	return m
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// baseOptions configure every compile.
var baseOptions = []expr.Option{
	expr.AllowUndefinedVariables(),
	expr.Optimize(false),
	expr.Function(fnContains, contains),
	expr.Function(fnStartsWith, startsWith),
	expr.Function(fnEndsWith, endsWith),
	expr.Function(fnFormat, format),
	expr.Function(fnJoin, join),
	expr.Function(fnToJSON, toJSON),
	expr.Function(fnFromJSON, fromJSON),
	expr.Function(fnGet, get),
	expr.Function(fnTruthy, truthy, new(func(any) bool)),
	expr.Function(fnCmp, cmp, new(func(string, any, any) bool)),
}

// configPool holds expr-lang configurations with our functions registered. Building one
// costs more than compiling a short expression, and a configuration is not safe for
// concurrent compiles (it caches type information), so each compile borrows one.
var configPool = sync.Pool{New: func() any {
	c := conf.CreateNew()
	for _, op := range baseOptions {
		op(c)
	}
	c.Check()
	return c
}}

func exprErrorOffset(rewritten string, offs []int, err error) int {
	var fe *file.Error
	if errors.As(err, &fe) {
		return mapOffset(rewritten, offs, fe.From)
	}
	return 0
}

func exprErrorMessage(err error) string {
	var fe *file.Error
	if errors.As(err, &fe) {
		return publicMessage(fe.Message)
	}
	return err.Error()
}

// compiled is one expression, ready to run. It is immutable and shared by every template
// that holds the same source (see memo); where it sits in each one is the part's offset.
type compiled struct {
	src    string // as the user wrote it, without ${{ }}
	prog   *vm.Program
	refs   uint8
	whole  uint8 // contexts read as a whole value, not only through properties
	needs  []string
	status bool // calls a status function
}

// compileExpr compiles one expression. On failure it returns the byte offset in src of the
// problem and a message.
func compileExpr(src string) (*compiled, int, string) {
	if c := memo.get(src); c != nil {
		return c, 0, ""
	}
	c, off, msg := compileFresh(src)
	if c != nil {
		memo.put(src, c)
		return c, 0, ""
	}
	return nil, off, msg
}

// memo remembers compiled expressions by source. Compiling is pure and a program is
// immutable and safe to run concurrently, so `runner validate` then planning, many routines
// repeating `${{ event.pull_request.number }}`, and every config reload share the work. It is
// bounded: when full it starts over.
var memo = &programMemo{m: map[string]*compiled{}}

const memoSize = 8192

type programMemo struct {
	mu sync.Mutex
	m  map[string]*compiled
}

func (pm *programMemo) get(src string) *compiled {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	return pm.m[src]
}

func (pm *programMemo) put(src string, c *compiled) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if len(pm.m) >= memoSize {
		clear(pm.m)
	}
	pm.m[src] = c
}

func compileFresh(src string) (*compiled, int, string) {
	rewritten, offs, serr := rewrite(src)
	if serr != nil {
		return nil, serr.offset, serr.msg
	}
	cfg := configPool.Get().(*conf.Config)
	defer configPool.Put(cfg)
	tree, err := parser.ParseWithConfig(rewritten, cfg)
	if err != nil {
		return nil, exprErrorOffset(rewritten, offs, err), exprErrorMessage(err)
	}
	p := &patcher{}
	ast.Walk(&tree.Node, p)
	if p.err != nil {
		return nil, mapOffset(rewritten, offs, p.err.loc.From), p.err.msg
	}
	if _, err := checker.Check(tree, cfg); err != nil {
		return nil, exprErrorOffset(rewritten, offs, err), exprErrorMessage(err)
	}
	prog, err := compiler.Compile(tree, cfg)
	if err != nil {
		return nil, exprErrorOffset(rewritten, offs, err), exprErrorMessage(err)
	}
	return &compiled{src: src, prog: prog, refs: p.refs, whole: p.whole(), needs: p.needs, status: p.status}, 0, ""
}

// mapOffset turns a rune offset in the rewritten source into a byte offset in the original.
func mapOffset(rewritten string, offs []int, runeOff int) int {
	n := 0
	for i := range rewritten {
		if n == runeOff {
			return offs[i]
		}
		n++
	}
	if len(offs) == 0 {
		return 0
	}
	return offs[len(offs)-1]
}

// publicMessage replaces internal names in expr-lang's messages with what the user wrote.
func publicMessage(msg string) string {
	for internal, public := range publicName {
		msg = strings.ReplaceAll(msg, internal, public)
	}
	msg = strings.ReplaceAll(msg, fnGet, "property access")
	msg = strings.ReplaceAll(msg, fnCmp, "comparison")
	msg = strings.ReplaceAll(msg, fnTruthy, "condition")
	return msg
}

func (c *compiled) run(vars map[string]any) (any, error) {
	v, err := expr.Run(c.prog, vars)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, errors.New(publicMessage(fe.Message))
		}
		return nil, err
	}
	return v, nil
}

type nodeErr struct {
	loc  file.Location
	msg  string
	node ast.Node
}

// patcher checks names and turns GitHub semantics into calls: nil-safe, case-insensitive,
// list-projecting property access; loose comparisons; value-returning && and ||; truthiness
// for !; status functions as variables the caller sets per evaluation.
type patcher struct {
	refs   uint8
	needs  []string
	status bool
	err    *nodeErr
	// named and props count, per context bit, the times a context is named and the times
	// it is the object of a property access (env.NAME, env['NAME']).
	named, props [8]int
}

// whole is the contexts that are named other than as the object of a property access: their
// value itself reaches a function or the result.
func (p *patcher) whole() uint8 {
	var w uint8
	for i := range p.named {
		if p.named[i] > p.props[i] {
			w |= 1 << i
		}
	}
	return w
}

// countContext counts one naming of the context bit (a single bit) in named or props.
func countContext(counts *[8]int, bit uint8) {
	counts[bits.TrailingZeros8(bit)]++
}

func (p *patcher) fail(n ast.Node, msg string) {
	if p.err == nil {
		p.err = &nodeErr{loc: n.Location(), msg: msg, node: n}
	}
}

func call(name string, args ...ast.Node) *ast.CallNode {
	return &ast.CallNode{Callee: &ast.IdentifierNode{Value: name}, Arguments: args}
}

// Visit implements ast.Visitor. ast.Walk visits children first, so a node's operands are
// already rewritten when it is visited.
func (p *patcher) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		switch {
		case contextBits[n.Value] != 0:
			p.refs |= contextBits[n.Value]
			countContext(&p.named, contextBits[n.Value])
		case strings.HasPrefix(n.Value, "__"):
		case n.Value == "secrets":
			p.fail(n, "secrets are never interpolated into text: declare the secret under the routine's `secrets:` "+
				"and the agent's `secrets:`, and the agent receives it as an environment variable")
		case n.Value == "github":
			p.fail(n, "there is no `github` context: the event payload is `event` (for example event.pull_request.number)")
		default:
			p.fail(n, fmt.Sprintf("unknown name %q: expressions read event, routine, inputs, matrix, needs and env", n.Value))
		}
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == CtxNeeds {
			if s, ok := n.Property.(*ast.StringNode); ok && !containsString(p.needs, s.Value) {
				p.needs = append(p.needs, s.Value)
			}
		}
		if n.Method {
			p.fail(n, "method calls are not supported; call functions like contains(a, b)")
			return
		}
		if id, ok := n.Node.(*ast.IdentifierNode); ok && contextBits[id.Value] != 0 {
			countContext(&p.props, contextBits[id.Value])
		}
		ast.Patch(node, call(fnGet, n.Node, n.Property))
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok {
			p.fail(n, "only functions can be called")
			return
		}
		if p.err != nil && p.err.node == ast.Node(id) {
			p.err.msg = fmt.Sprintf("unknown function %s(): available are contains, startsWith, endsWith, format, join, "+
				"toJSON, fromJSON, success, failure, always, cancelled", id.Value)
			return
		}
		status := map[string]string{fnSuccess: varSuccess, fnFailure: varFailure, fnCancelled: varCancelled, fnAlways: ""}
		if v, ok := status[id.Value]; ok {
			if len(n.Arguments) != 0 {
				p.fail(n, publicName[id.Value]+"() takes no arguments")
				return
			}
			p.status = true
			if v == "" {
				ast.Patch(node, &ast.BoolNode{Value: true})
			} else {
				ast.Patch(node, &ast.IdentifierNode{Value: v})
			}
		}
	case *ast.BinaryNode:
		switch n.Operator {
		case "==", "!=", "<", "<=", ">", ">=":
			ast.Patch(node, call(fnCmp, &ast.StringNode{Value: n.Operator}, n.Left, n.Right))
		case "&&", "and":
			ast.Patch(node, &ast.ConditionalNode{Cond: call(fnTruthy, n.Left), Exp1: n.Right, Exp2: n.Left})
		case "||", "or":
			ast.Patch(node, &ast.ConditionalNode{Cond: call(fnTruthy, n.Left), Exp1: n.Left, Exp2: n.Right})
		}
	case *ast.UnaryNode:
		if n.Operator == "!" || n.Operator == "not" {
			n.Node = call(fnTruthy, n.Node)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// errorAt builds a config error for a byte offset inside src. When pos.Col is set, pos is
// where the value's text starts, or the `|`/`>` indicator of a block scalar (text that ends in
// a line break), whose text starts on the next line. On the text's first line the column moves
// with the offset; on later lines only the line is known, because a block scalar's indentation
// is not part of the value. Without a column, pos is just the line to report.
func errorAt(pos config.Pos, src string, off int, msg string) *config.Error {
	if off > len(src) {
		off = len(src)
	}
	p := pos
	if pos.Col == 0 {
		// pos is only the line of the field's key: an offset inside the value cannot be placed.
		return &config.Error{Pos: p, Msg: msg}
	}
	before := src[:off]
	nl := strings.Count(before, "\n")
	switch {
	case strings.HasSuffix(src, "\n"):
		p.Line, p.Col = pos.Line+1+nl, 0
	case nl > 0:
		p.Line, p.Col = pos.Line+nl, 0
	default:
		p.Col = pos.Col + utf8.RuneCountInString(before)
	}
	return &config.Error{Pos: p, Msg: msg}
}

// Template is text with embedded `${{ }}` expressions (prompts, titles, groups, matrix axes).
// A template without expressions has no parts: it is its source.
type Template struct {
	src    string
	pos    config.Pos
	parts  []part
	single *part // in parts: the expression when the template is exactly one, else nil
	needs  []string
	refs   uint8
	whole  uint8 // contexts some expression reads as a whole value (see stringContext)
	status bool
}

// part is literal text, or an expression at byte offset off of the template source.
type part struct {
	lit string
	e   *compiled
	off int
}

// CompileTemplate compiles src, found at pos in a config file. The error is a *config.Error.
func CompileTemplate(src string, pos config.Pos) (*Template, error) {
	t := &Template{src: src, pos: pos}
	if !strings.Contains(src, "${{") {
		return t, nil // literal text: nothing to split or compile
	}
	var buf [8]segment
	segs, serr := split(src, buf[:0])
	if serr != nil {
		return nil, errorAt(pos, src, serr.offset, serr.msg)
	}
	t.parts = make([]part, 0, len(segs))
	exprs := 0
	for _, s := range segs {
		if !s.isExpr {
			t.parts = append(t.parts, part{lit: s.text})
			continue
		}
		c, off, msg := compileExpr(s.text)
		if c == nil {
			return nil, errorAt(pos, src, s.offset+off, fmt.Sprintf("in ${{ %s }}: %s", strings.TrimSpace(s.text), msg))
		}
		t.parts = append(t.parts, part{e: c, off: s.offset})
		t.refs |= c.refs
		t.whole |= c.whole
		t.status = t.status || c.status
		for _, n := range c.needs {
			if !containsString(t.needs, n) {
				t.needs = append(t.needs, n)
			}
		}
		exprs++
	}
	// parts is complete (and never grows again), so single may point into it.
	if exprs == 1 && strings.TrimSpace(stripExprs(segs)) == "" {
		for i := range t.parts {
			if t.parts[i].e != nil {
				t.single = &t.parts[i]
			}
		}
	}
	return t, nil
}

func stripExprs(segs []segment) string {
	var b strings.Builder
	for _, s := range segs {
		if !s.isExpr {
			b.WriteString(s.text)
		}
	}
	return b.String()
}

// Source is the template as written.
func (t *Template) Source() string { return t.src }

// Pos is where the template is in the config.
func (t *Template) Pos() config.Pos { return t.pos }

// Literal reports whether the template has no expressions.
func (t *Template) Literal() bool { return t.refs == 0 && !t.hasExprs() }

func (t *Template) hasExprs() bool {
	for _, p := range t.parts {
		if p.e != nil {
			return true
		}
	}
	return false
}

// Uses reports whether any expression reads the named context (CtxNeeds, CtxMatrix, ...).
func (t *Template) Uses(context string) bool { return t.refs&contextBits[context] != 0 }

// Needs lists the agents read through needs.<agent>, in order of appearance.
func (t *Template) Needs() []string { return t.needs }

// UsesStatus reports whether a status function (success(), failure(), ...) is called.
func (t *Template) UsesStatus() bool { return t.status }

// Render evaluates every expression and joins the text. Values are formatted with Text.
func (t *Template) Render(ctx *Context) (string, error) {
	return t.render(ctx, 0)
}

// Partial renders like Render but keeps, as written, every expression that reads one of the
// contexts in keep: a preview of text that is resolved later.
func (t *Template) Partial(ctx *Context, keep ...string) (string, error) {
	var mask uint8
	for _, k := range keep {
		mask |= contextBits[k]
	}
	return t.render(ctx, mask)
}

func (t *Template) render(ctx *Context, keep uint8) (string, error) {
	if !t.hasExprs() {
		return t.src, nil
	}
	var vars map[string]any // built at the first expression that runs, for all of them
	var b strings.Builder
	b.Grow(len(t.src)) // the text is about as long as the source, often the one allocation
	for _, p := range t.parts {
		if p.e == nil {
			b.WriteString(p.lit)
			continue
		}
		if p.e.refs&keep != 0 {
			b.WriteString("${{")
			b.WriteString(p.e.src)
			b.WriteString("}}")
			continue
		}
		if vars == nil {
			vars = ctx.vars(t.refs, t.whole, t.status)
		}
		v, err := p.e.run(vars)
		if err != nil {
			releaseVars(vars)
			return "", t.evalError(p, err)
		}
		b.WriteString(Text(v))
	}
	releaseVars(vars)
	return b.String(), nil
}

// Value evaluates the template: the expression's own value (a list, a map, a number) when
// the template is exactly one expression, the rendered text otherwise.
func (t *Template) Value(ctx *Context) (any, error) {
	if t.single == nil {
		return t.Render(ctx)
	}
	e := t.single.e
	vars := ctx.vars(e.refs, e.whole, e.status)
	v, err := e.run(vars)
	releaseVars(vars)
	if err != nil {
		return nil, t.evalError(*t.single, err)
	}
	return v, nil
}

func (t *Template) evalError(p part, err error) error {
	return errorAt(t.pos, t.src, p.off, fmt.Sprintf("evaluating ${{ %s }}: %v", strings.TrimSpace(p.e.src), err))
}

// Condition is an `if:` expression.
type Condition struct {
	src string
	pos config.Pos
	e   *compiled // nil: the default, success()
	off int       // byte offset of e in src
}

// CompileCondition compiles an `if:` value, bare or wrapped in ${{ }}. An empty source is the
// default condition, success(). A condition that calls no status function is implicitly
// `success() && (…)`, as in GitHub Actions. The error is a *config.Error.
func CompileCondition(src string, pos config.Pos) (*Condition, error) {
	c := &Condition{src: src, pos: pos}
	inner, off := src, 0
	if strings.Contains(src, "${{") {
		var buf [8]segment
		segs, serr := split(src, buf[:0])
		if serr != nil {
			return nil, errorAt(pos, src, serr.offset, serr.msg)
		}
		var e *segment
		for i := range segs {
			if segs[i].isExpr {
				if e != nil {
					return nil, errorAt(pos, src, segs[i].offset, "an if: condition must be one expression; "+
						"write it without ${{ }} or wrap all of it in one ${{ }}")
				}
				e = &segs[i]
			}
		}
		if strings.TrimSpace(stripExprs(segs)) != "" {
			return nil, errorAt(pos, src, 0, "an if: condition mixes text and ${{ }}, which would always be true; "+
				"write it without ${{ }} or wrap all of it in one ${{ }}")
		}
		inner, off = e.text, e.offset
	}
	if strings.TrimSpace(inner) == "" {
		return c, nil
	}
	if len(inner) > maxExprLen {
		return nil, errorAt(pos, src, off, fmt.Sprintf("expression longer than %d bytes", maxExprLen))
	}
	e, eoff, msg := compileExpr(inner)
	if e == nil {
		return nil, errorAt(pos, src, off+eoff, fmt.Sprintf("in if: %s: %s", strings.TrimSpace(inner), msg))
	}
	c.e, c.off = e, off
	return c, nil
}

// Source is the condition as written.
func (c *Condition) Source() string { return c.src }

// Needs lists the agents the condition reads through needs.<agent>.
func (c *Condition) Needs() []string {
	if c.e == nil {
		return nil
	}
	return c.e.needs
}

// Uses reports whether the condition reads the named context.
func (c *Condition) Uses(context string) bool {
	return c.e != nil && c.e.refs&contextBits[context] != 0
}

// Eval evaluates the condition with GitHub truthiness.
func (c *Condition) Eval(ctx *Context) (bool, error) {
	success := ctx.Status == nil || ctx.Status.Success
	if c.e == nil {
		return success, nil
	}
	vars := ctx.vars(c.e.refs, c.e.whole, c.e.status)
	v, err := c.e.run(vars)
	releaseVars(vars)
	if err != nil {
		return false, errorAt(c.pos, c.src, c.off, fmt.Sprintf("evaluating if: %s: %v", strings.TrimSpace(c.e.src), err))
	}
	ok := Truthy(v)
	if !c.e.status {
		ok = ok && success
	}
	return ok, nil
}
