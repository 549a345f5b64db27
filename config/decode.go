package config

import (
	"fmt"
	"iter"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The strict decoder walks yaml.Node trees through key tables (spec.go). Each table lists the
// keys an object accepts, how to decode each value and what the JSON Schema says about it,
// so the decoder and `runner schema` cannot disagree about the format.

// maxNodes bounds the work one file may cause through aliases (`*a` repeated inside `&a`
// trees grows exponentially), so hostile input cannot hang the loader.
const maxNodes = 200_000

// maxDepth bounds nesting, for the same reason.
const maxDepth = 64

// kv is one key and its value as written.
type kv struct{ k, v *yaml.Node }

// entries are a mapping's keys and values as written, alternating: k0, v0, k1, v1, ... A
// mapping that needs no rewriting (the common case) is read in place as its own Content,
// so decoding allocates nothing per mapping; only merge keys, aliased keys and mistakes
// make pairs build a new list.
type entries []*yaml.Node

// len is the number of entries.
func (e entries) len() int { return len(e) / 2 }

// all yields the entries in order.
func (e entries) all() iter.Seq[kv] {
	return func(yield func(kv) bool) {
		for i := 0; i+1 < len(e); i += 2 {
			if !yield(kv{e[i], e[i+1]}) {
				return
			}
		}
	}
}

// get returns the entry whose key is key.
func (e entries) get(key string) (kv, bool) {
	for i := 0; i+1 < len(e); i += 2 {
		if e[i].Value == key {
			return kv{e[i], e[i+1]}, true
		}
	}
	return kv{}, false
}

// decoder holds the state of decoding one file.
type decoder struct {
	file string
	errs Errors
	// keys records, for each decoded struct (by pointer), the entries of its mapping, so
	// that validation points at the value that is wrong and defaults see what was left
	// unset. Only known keys are ever looked up, so unknown ones need no filtering out.
	keys   map[any]entries
	budget int
	// workflow, when set, reads the file as a workflow an orchestrating agent wrote.
	workflow *WorkflowRules
}

func newDecoder() *decoder {
	return &decoder{keys: make(map[any]entries, 16)}
}

// reset readies d for the next file. Load decodes every file with one decoder, so the keys
// map is allocated once rather than grown again for each file.
func (d *decoder) reset(file string) {
	d.file = file
	d.errs = nil // the previous file's errors belong to its caller now
	clear(d.keys)
	d.budget = maxNodes
}

func (d *decoder) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: d.file}
	}
	return Pos{File: d.file, Line: n.Line, Col: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, Errorf(d.pos(n), format, args...))
}

func (d *decoder) errorAt(p Pos, format string, args ...any) {
	d.errs = append(d.errs, Errorf(p, format, args...))
}

// key returns what was written for key on the struct t, if anything.
func (d *decoder) key(t any, key string) (kv, bool) {
	return d.keys[t].get(key)
}

// decoded reports whether the struct t was decoded from a mapping.
func (d *decoder) decoded(t any) bool {
	_, ok := d.keys[t]
	return ok
}

// resolve follows aliases and unwraps documents. It returns nil when the budget is spent.
func (d *decoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && i < maxDepth; i++ {
		switch n.Kind {
		case yaml.AliasNode:
			n = n.Alias
		case yaml.DocumentNode:
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		default:
			d.budget--
			if d.budget < 0 {
				return nil
			}
			return n
		}
	}
	return nil
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describe names what a node is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping (key: value)"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing (an empty value)"
		case "!!bool":
			return "true/false (" + n.Value + ")"
		case "!!int", "!!float":
			return "a number (" + n.Value + ")"
		case "!!str":
			return "a string (" + quoteShort(n.Value) + ")"
		}
		return "a " + strings.TrimPrefix(n.Tag, "!!") + " value"
	}
	return "something else"
}

func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return strconv.Quote(s)
}

// label names a mapping in messages: `on`, or `agent "audit"` for a named one. It is
// formatted only when a message needs it, so decoding builds no names.
type label struct{ what, name string }

func (l label) String() string {
	if l.name == "" {
		return l.what
	}
	return l.what + " " + strconv.Quote(l.name)
}

// pairs lists a mapping's entries, applying `<<` merge keys (explicit keys win) and reporting
// duplicate and non-string keys. in names the mapping for messages, or is empty.
func (d *decoder) pairs(n *yaml.Node, in label) entries {
	if plainMapping(n) {
		return n.Content
	}
	where := ""
	if in.what != "" {
		where = " in " + in.String()
	}
	out := make(entries, 0, len(n.Content))
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	var merged entries
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.AliasNode {
			k = d.resolve(k)
		}
		if k == nil || k.Kind != yaml.ScalarNode {
			d.errorf(n.Content[i], "keys%s must be plain names, not %s", where, describe(k))
			continue
		}
		if isMergeKey(k) {
			merged = append(merged, d.mergeSource(v, in)...)
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			d.errorf(k, "key %q is set twice%s (first at line %d); remove one", k.Value, where, prev.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, k, v)
	}
	for p := range merged.all() {
		if _, ok := seen[p.k.Value]; !ok {
			seen[p.k.Value] = p.k
			out = append(out, p.k, p.v)
		}
	}
	return out
}

// plainMappingMax bounds the mappings plainMapping checks for duplicate keys pair by pair;
// bigger ones are rare and go through pairs' map.
const plainMappingMax = 16

// plainMapping reports whether a mapping's Content already is its entries: every key a
// plain scalar that is not a merge key, and no key twice.
func plainMapping(n *yaml.Node) bool {
	c := n.Content
	if len(c)%2 != 0 || len(c)/2 > plainMappingMax {
		return false
	}
	for i := 0; i < len(c); i += 2 {
		k := c[i]
		if k.Kind != yaml.ScalarNode || isMergeKey(k) {
			return false
		}
		for j := 0; j < i; j += 2 {
			if c[j].Value == k.Value {
				return false
			}
		}
	}
	return true
}

func isMergeKey(k *yaml.Node) bool {
	return k.Tag == "!!merge" || k.Value == "<<" && k.Style == 0
}

func (d *decoder) mergeSource(v *yaml.Node, in label) entries {
	r := d.resolve(v)
	if r == nil {
		return nil
	}
	switch r.Kind {
	case yaml.MappingNode:
		return d.pairs(r, in)
	case yaml.SequenceNode:
		var out entries
		for _, e := range r.Content {
			if m := d.resolve(e); m != nil && m.Kind == yaml.MappingNode {
				out = append(out, d.pairs(m, in)...)
			} else {
				d.errorf(e, "`<<` merges mappings only, got %s", describe(m))
			}
		}
		return out
	}
	d.errorf(v, "`<<` merges a mapping (like `<<: *defaults`), got %s", describe(r))
	return nil
}

// --- scalar decoders. Each reports its own error and returns ok=false on a bad value. ---

func (d *decoder) str(n *yaml.Node, what string) (string, bool) {
	r := d.resolve(n)
	if r == nil || r.Kind != yaml.ScalarNode || r.Tag == "!!null" {
		d.errorf(n, "%s must be a string, got %s", what, describe(r))
		return "", false
	}
	if r.Tag != "!!str" {
		d.errorf(n, "%s must be a string, got %s; put it in quotes: \"%s\"", what, describe(r), r.Value)
		return "", false
	}
	return r.Value, true
}

// parseBool reads the booleans yaml.v3 tags as !!bool.
func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// strItem is str for the i-th item of a list, naming it key[i] only when it is wrong.
func (d *decoder) strItem(n *yaml.Node, key string, i int) (string, bool) {
	if r := d.resolve(n); r != nil && r.Kind == yaml.ScalarNode && r.Tag == "!!str" {
		return r.Value, true
	}
	return d.str(n, fmt.Sprintf("%s[%d]", key, i))
}

// text accepts any non-null scalar as its written text: `user: 1000`, `default: 3`.
func (d *decoder) text(n *yaml.Node, what string) (string, bool) {
	r := d.resolve(n)
	if !isText(r) {
		d.errorf(n, "%s must be a string, got %s", what, describe(r))
		return "", false
	}
	return r.Value, true
}

// textItem is text for the i-th item of a list, naming it key[i] only when it is wrong.
func (d *decoder) textItem(n *yaml.Node, key string, i int) (string, bool) {
	r := d.resolve(n)
	if !isText(r) {
		d.errorf(n, "%s[%d] must be a string, got %s", key, i, describe(r))
		return "", false
	}
	return r.Value, true
}

// isText reports whether a resolved node is a scalar that text accepts.
func isText(r *yaml.Node) bool {
	return r != nil && r.Kind == yaml.ScalarNode && r.Tag != "!!null"
}

func (d *decoder) boolean(n *yaml.Node, what string) (bool, bool) {
	r := d.resolve(n)
	if r != nil && r.Kind == yaml.ScalarNode && r.Tag == "!!bool" {
		if b, ok := parseBool(r.Value); ok {
			return b, true
		}
	}
	d.errorf(n, "%s must be true or false, got %s", what, describe(r))
	return false, false
}

func (d *decoder) integer(n *yaml.Node, what string, minimum int) (int, bool) {
	r := d.resolve(n)
	if r != nil && r.Kind == yaml.ScalarNode && r.Tag == "!!int" {
		if i, err := strconv.ParseInt(r.Value, 0, 64); err == nil && i <= math.MaxInt32 {
			if int(i) < minimum {
				d.errorf(n, "%s must be at least %d, got %d", what, minimum, i)
				return 0, false
			}
			return int(i), true
		}
		d.errorf(n, "%s is too large: %s", what, r.Value)
		return 0, false
	}
	d.errorf(n, "%s must be a whole number, got %s", what, describe(r))
	return 0, false
}

func (d *decoder) number(n *yaml.Node, what string) (float64, bool) {
	r := d.resolve(n)
	if r != nil && r.Kind == yaml.ScalarNode && (r.Tag == "!!int" || r.Tag == "!!float") {
		if f, err := strconv.ParseFloat(r.Value, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f, true
		}
	}
	d.errorf(n, "%s must be a number, got %s", what, describe(r))
	return 0, false
}

func (d *decoder) duration(n *yaml.Node, what string) (time.Duration, bool) {
	r := d.resolve(n)
	if r == nil || r.Kind != yaml.ScalarNode || r.Tag == "!!null" {
		d.errorf(n, "%s must be a duration like 30m or 1h30m, got %s", what, describe(r))
		return 0, false
	}
	v, err := parseDuration(r.Value)
	if err != nil {
		hint := ""
		if r.Tag == "!!int" {
			hint = fmt.Sprintf(" (a bare number has no unit: write %ss or %sm)", r.Value, r.Value)
		}
		d.errorf(n, "%s must be a positive duration like 30m, 90s or 1h30m, got %s%s", what, quoteShort(r.Value), hint)
		return 0, false
	}
	return v, true
}

func (d *decoder) size(n *yaml.Node, what string) (int64, bool) {
	r := d.resolve(n)
	if r == nil || r.Kind != yaml.ScalarNode || r.Tag == "!!null" {
		d.errorf(n, "%s must be a size like 512m or 2g, got %s", what, describe(r))
		return 0, false
	}
	v, err := ParseSize(r.Value)
	if err != nil || v <= 0 {
		d.errorf(n, "%s must be a positive size like 512m, 2g or 1.5g (k, m, g, t are powers of 1024; a bare number is bytes), got %s", what, quoteShort(r.Value))
		return 0, false
	}
	return v, true
}

// seq returns the items of a list; a single scalar counts as a one-item list when one is true.
func (d *decoder) seq(n *yaml.Node, what string, one bool) ([]*yaml.Node, bool) {
	r := d.resolve(n)
	if r != nil && r.Kind == yaml.SequenceNode {
		return r.Content, true
	}
	if one && r != nil && r.Kind == yaml.ScalarNode && r.Tag != "!!null" {
		return []*yaml.Node{n}, true
	}
	if one {
		d.errorf(n, "%s must be a list or a single value, got %s", what, describe(r))
	} else {
		d.errorf(n, "%s must be a list (like [a, b], or one \"- item\" per line), got %s", what, describe(r))
	}
	return nil, false
}

// mapping returns a mapping's entries; null counts as an empty mapping when empty is true.
func (d *decoder) mapping(n *yaml.Node, what string, empty bool) (entries, bool) {
	r := d.resolve(n)
	if r != nil && r.Kind == yaml.MappingNode {
		return d.pairs(r, label{what: what}), true
	}
	if empty && isNull(r) {
		return nil, true
	}
	d.errorf(n, "%s must be a mapping of key: value lines, got %s", what, describe(r))
	return nil, false
}

// value converts any YAML value to plain Go data (string, int, float64, bool, nil, []any,
// map[string]any), for `with:` and matrix values.
func (d *decoder) value(n *yaml.Node, depth int) (any, bool) {
	r := d.resolve(n)
	if r == nil || depth > maxDepth {
		d.errorf(n, "value is nested too deeply or expands too much")
		return nil, false
	}
	switch r.Kind {
	case yaml.ScalarNode:
		switch r.Tag {
		case "!!null":
			return nil, true
		case "!!bool":
			if b, ok := parseBool(r.Value); ok {
				return b, true
			}
		case "!!int":
			if i, err := strconv.ParseInt(r.Value, 0, 64); err == nil {
				return int(i), true
			}
		case "!!float":
			if f, err := strconv.ParseFloat(r.Value, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f, true
			}
		}
		return r.Value, true
	case yaml.SequenceNode:
		out := make([]any, 0, len(r.Content))
		for _, c := range r.Content {
			v, ok := d.value(c, depth+1)
			if !ok {
				return nil, false
			}
			out = append(out, v)
		}
		return out, true
	case yaml.MappingNode:
		es := d.pairs(r, label{})
		out := make(map[string]any, es.len())
		for p := range es.all() {
			v, ok := d.value(p.v, depth+1)
			if !ok {
				return nil, false
			}
			out[p.k.Value] = v
		}
		return out, true
	}
	d.errorf(n, "unsupported YAML value")
	return nil, false
}

// --- key tables ---

// field is one key of an object: its documentation, its JSON Schema and its decoder.
type field[T any] struct {
	key    string
	doc    string
	schema func(g *schemaGen) map[string]any
	decode func(d *decoder, k, v *yaml.Node, t *T)
	// required keys are reported when missing.
	required bool
}

// object is the key table of one mapping in the format.
type object[T any] struct {
	what   string // how messages name it: "agent", "routine", "on.push"
	def    string // its name in the schema's $defs
	doc    string
	fields []field[T]
	index  map[string]int
	names  []string
}

func newObject[T any](what, def, doc string, fields ...field[T]) *object[T] {
	o := &object[T]{what: what, def: def, doc: doc, fields: fields, index: map[string]int{}}
	for i, f := range fields {
		o.index[f.key] = i
		o.names = append(o.names, f.key)
	}
	sort.Strings(o.names)
	return o
}

// decode fills t from the mapping n; where says which one for messages (`agent "audit"`).
// Unknown keys are errors with a suggestion; hint may add advice for a key that belongs
// to another level.
func (o *object[T]) decode(d *decoder, k, n *yaml.Node, t *T, where label, hint func(key string) string) {
	r := d.resolve(n)
	if isNull(r) {
		r = &yaml.Node{Kind: yaml.MappingNode}
	}
	if r.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping of key: value lines, got %s", where, describe(r))
		return
	}
	es := d.pairs(r, where)
	d.keys[t] = es
	for p := range es.all() {
		i, ok := o.index[p.k.Value]
		if !ok {
			msg := fmt.Sprintf("unknown key %q in %s", p.k.Value, where)
			if hint != nil {
				if h := hint(p.k.Value); h != "" {
					d.errorf(p.k, "%s; %s", msg, h)
					continue
				}
			}
			d.errorf(p.k, "%s%s", msg, didYouMean(p.k.Value, o.names))
			continue
		}
		o.fields[i].decode(d, p.k, p.v, t)
	}
	for _, f := range o.fields {
		if !f.required {
			continue
		}
		if _, ok := es.get(f.key); !ok {
			at := k
			if at == nil {
				at = r
			}
			d.errorf(at, "%s is missing the required key %q", where, f.key)
		}
	}
}

// --- field constructors: each pairs a decoder with its schema. ---

func strField[T any](key, doc string, p func(*T) *string) field[T] {
	return field[T]{key: key, doc: doc,
		schema: func(*schemaGen) map[string]any { return map[string]any{"type": "string"} },
		decode: func(d *decoder, _, v *yaml.Node, t *T) {
			if s, ok := d.str(v, key); ok {
				*p(t) = s
			}
		}}
}

// textField accepts numbers and booleans as their text too (`user: 1000`).
func textField[T any](key, doc string, p func(*T) *string) field[T] {
	return field[T]{key: key, doc: doc,
		schema: func(*schemaGen) map[string]any { return map[string]any{"type": []any{"string", "number", "boolean"}} },
		decode: func(d *decoder, _, v *yaml.Node, t *T) {
			if s, ok := d.text(v, key); ok {
				*p(t) = s
			}
		}}
}

func enumField[T any](key, doc string, values []string, p func(*T) *string) field[T] {
	return field[T]{key: key, doc: doc,
		schema: func(*schemaGen) map[string]any { return map[string]any{"type": "string", "enum": toAny(values)} },
		decode: func(d *decoder, _, v *yaml.Node, t *T) {
			s, ok := d.str(v, key)
			if !ok {
				return
			}
			for _, x := range values {
				if s == x {
					*p(t) = s
					return
				}
			}
			d.errorf(v, "%s must be one of %s, got %q%s", key, strings.Join(values, ", "), s, suggestOnly(s, values))
		}}
}

func suggestOnly(s string, values []string) string {
	if m := suggest(s, values); m != "" {
		return fmt.Sprintf("; did you mean %q?", m)
	}
	return ""
}

func boolField[T any](key, doc string, p func(*T) *bool) field[T] {
	return field[T]{key: key, doc: doc,
		schema: func(*schemaGen) map[string]any { return map[string]any{"type": "boolean"} },
		decode: func(d *decoder, _, v *yaml.Node, t *T) {
			if b, ok := d.boolean(v, key); ok {
				*p(t) = b
			}
		}}
}

func intField[T any](key, doc string, minimum int, p func(*T) *int) field[T] {
	return field[T]{key: key, doc: doc,
		schema: func(*schemaGen) map[string]any { return map[string]any{"type": "integer", "minimum": minimum} },
		decode: func(d *decoder, _, v *yaml.Node, t *T) {
			if i, ok := d.integer(v, key, minimum); ok {
				*p(t) = i
			}
		}}
}

const durationPattern = `^\s*([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+\s*$`
const sizePattern = `^\s*[0-9]+(\.[0-9]+)?([kKmMgGtT]([iI]?[bB])?|[bB])?\s*$`

func durationField[T any](key, doc string, p func(*T) *time.Duration) field[T] {
	return field[T]{key: key, doc: doc,
		schema: func(*schemaGen) map[string]any {
			return map[string]any{"type": "string", "pattern": durationPattern}
		},
		decode: func(d *decoder, _, v *yaml.Node, t *T) {
			if x, ok := d.duration(v, key); ok {
				*p(t) = x
			}
		}}
}

// listField is a list of strings; when one is true a single string is a one-item list
// (`needs: plan`). check runs on each item with its node.
func listField[T any](key, doc string, one bool, p func(*T) *[]string, check func(d *decoder, n *yaml.Node, s string)) field[T] {
	return field[T]{key: key, doc: doc,
		schema: func(*schemaGen) map[string]any {
			l := map[string]any{"type": "array", "items": map[string]any{"type": "string"}}
			if one {
				return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, l}}
			}
			return l
		},
		decode: func(d *decoder, _, v *yaml.Node, t *T) {
			items, ok := d.seq(v, key, one)
			if !ok {
				return
			}
			out := make([]string, 0, len(items))
			for i, it := range items {
				s, ok := d.strItem(it, key, i)
				if !ok {
					continue
				}
				if check != nil {
					check(d, it, s)
				}
				out = append(out, s)
			}
			*p(t) = out
		}}
}

// envField is a mapping of environment variable names to scalar values.
func envField[T any](key, doc string, p func(*T) *map[string]string) field[T] {
	return field[T]{key: key, doc: doc,
		schema: func(*schemaGen) map[string]any {
			return map[string]any{"type": "object",
				"propertyNames":        map[string]any{"pattern": `^[A-Za-z_][A-Za-z0-9_]*$`},
				"additionalProperties": map[string]any{"type": []any{"string", "number", "boolean"}}}
		},
		decode: func(d *decoder, _, v *yaml.Node, t *T) {
			es, ok := d.mapping(v, key, true)
			if !ok {
				return
			}
			m := make(map[string]string, es.len())
			for e := range es.all() {
				if !isEnvName(e.k.Value) {
					d.errorf(e.k, "%s: %q is not a valid environment variable name (letters, digits and _, not starting with a digit)", key, e.k.Value)
					continue
				}
				if s, ok := d.text(e.v, key+"."+e.k.Value); ok {
					m[e.k.Value] = s
				}
			}
			*p(t) = m
		}}
}

// objField decodes a nested object described by another table into a value.
func objField[T, U any](key string, o *object[U], p func(*T) *U) field[T] {
	return field[T]{key: key, doc: o.doc,
		schema: func(g *schemaGen) map[string]any { return g.ref(o) },
		decode: func(d *decoder, k, v *yaml.Node, t *T) {
			o.decode(d, k, v, p(t), label{what: o.what}, nil)
		}}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
