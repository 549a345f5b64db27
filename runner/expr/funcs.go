package expr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// Internal names of the functions and status variables. They cannot clash with what users
// write: rewrite maps GitHub spellings onto them.
const (
	fnContains   = "__contains"
	fnStartsWith = "__startsWith"
	fnEndsWith   = "__endsWith"
	fnFormat     = "__format"
	fnJoin       = "__join"
	fnToJSON     = "__toJSON"
	fnFromJSON   = "__fromJSON"
	fnSuccess    = "__success"
	fnFailure    = "__failure"
	fnAlways     = "__always"
	fnCancelled  = "__cancelled"

	fnGet    = "__get"
	fnTruthy = "__truthy"
	fnCmp    = "__cmp"

	varSuccess   = "__status_success"
	varFailure   = "__status_failure"
	varCancelled = "__status_cancelled"
)

// publicName is how errors name an internal function.
var publicName = map[string]string{
	fnContains: "contains", fnStartsWith: "startsWith", fnEndsWith: "endsWith", fnFormat: "format",
	fnJoin: "join", fnToJSON: "toJSON", fnFromJSON: "fromJSON", fnSuccess: "success",
	fnFailure: "failure", fnAlways: "always", fnCancelled: "cancelled",
}

func argc(name string, params []any, lo, hi int) error {
	if len(params) < lo || len(params) > hi {
		want := strconv.Itoa(lo)
		if hi != lo {
			want = fmt.Sprintf("%d to %d", lo, hi)
		}
		return fmt.Errorf("%s() takes %s arguments, got %d", publicName[name], want, len(params))
	}
	return nil
}

func contains(params ...any) (any, error) {
	if err := argc(fnContains, params, 2, 2); err != nil {
		return nil, err
	}
	search, item := params[0], params[1]
	if list, ok := asList(search); ok {
		for _, v := range list {
			if looseEqual(v, item) {
				return true, nil
			}
		}
		return false, nil
	}
	if search == nil {
		return false, nil
	}
	return strings.Contains(strings.ToLower(Text(search)), strings.ToLower(Text(item))), nil
}

func startsWith(params ...any) (any, error) {
	if err := argc(fnStartsWith, params, 2, 2); err != nil {
		return nil, err
	}
	return strings.HasPrefix(strings.ToLower(Text(params[0])), strings.ToLower(Text(params[1]))), nil
}

func endsWith(params ...any) (any, error) {
	if err := argc(fnEndsWith, params, 2, 2); err != nil {
		return nil, err
	}
	return strings.HasSuffix(strings.ToLower(Text(params[0])), strings.ToLower(Text(params[1]))), nil
}

// format replaces {N} with the Nth argument as text; {{ and }} are literal braces.
func format(params ...any) (any, error) {
	if len(params) == 0 {
		return nil, fmt.Errorf("format() needs a format string")
	}
	f, ok := params[0].(string)
	if !ok {
		return nil, fmt.Errorf("format(): the first argument must be a string, got %s", typeName(params[0]))
	}
	args := params[1:]
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch {
		case c == '{' && i+1 < len(f) && f[i+1] == '{':
			b.WriteByte('{')
			i++
		case c == '}' && i+1 < len(f) && f[i+1] == '}':
			b.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexByte(f[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("format(): unclosed { in %q", f)
			}
			n, err := strconv.Atoi(f[i+1 : i+end])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("format(): %q is not an argument index like {0}", f[i:i+end+1])
			}
			if n >= len(args) {
				return nil, fmt.Errorf("format(): {%d} but only %d arguments given", n, len(args))
			}
			b.WriteString(Text(args[n]))
			i += end
		case c == '}':
			return nil, fmt.Errorf("format(): unmatched } in %q (write }} for a literal brace)", f)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func join(params ...any) (any, error) {
	if err := argc(fnJoin, params, 1, 2); err != nil {
		return nil, err
	}
	sep := ","
	if len(params) == 2 {
		sep = Text(params[1])
	}
	list, ok := asList(params[0])
	if !ok {
		return Text(params[0]), nil
	}
	parts := make([]string, len(list))
	for i, v := range list {
		parts[i] = Text(v)
	}
	return strings.Join(parts, sep), nil
}

func toJSON(params ...any) (any, error) {
	if err := argc(fnToJSON, params, 1, 1); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(params[0]); err != nil {
		return nil, fmt.Errorf("toJSON(): %w", err)
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// fromJSON parses a JSON string. Anything else is returned unchanged, because agent outputs
// are often JSON already and failing on them would only force users to wrap them in toJSON.
func fromJSON(params ...any) (any, error) {
	if err := argc(fnFromJSON, params, 1, 1); err != nil {
		return nil, err
	}
	s, ok := params[0].(string)
	if !ok {
		return params[0], nil
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("fromJSON(): not valid JSON (%v): %s", err, clip(s, 60))
	}
	return v, nil
}

// get is property and index access: nil-safe (a missing property is nil), case-insensitive
// for map keys as in GitHub, and a string key applied to a list projects it onto each element,
// so needs.audit.outputs.verdict is the list of every instance's verdict.
func get(params ...any) (any, error) {
	if len(params) != 2 {
		return nil, fmt.Errorf("internal: property access with %d arguments", len(params))
	}
	return lookup(params[0], params[1]), nil
}

func lookup(obj, key any) any {
	switch o := obj.(type) {
	case nil:
		return nil
	case map[string]any:
		return lookupKey(o, Text(key))
	case map[string]string: // env and inputs (see stringContext)
		return lookupKey(o, Text(key))
	case []any:
		if k, ok := key.(string); ok {
			out := make([]any, len(o))
			for i, el := range o {
				out[i] = lookup(el, k)
			}
			return out
		}
		if i, ok := index(key); ok && i >= 0 && i < len(o) {
			return o[i]
		}
		return nil
	}
	// Other Go types ([]string, typed maps) through reflection.
	v := reflect.ValueOf(obj)
	switch v.Kind() {
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return nil
		}
		k := Text(key)
		if mv := v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key())); mv.IsValid() {
			return mv.Interface()
		}
		iter := v.MapRange()
		for iter.Next() {
			if strings.EqualFold(iter.Key().String(), k) {
				return iter.Value().Interface()
			}
		}
	case reflect.Slice, reflect.Array:
		if k, ok := key.(string); ok {
			out := make([]any, v.Len())
			for i := range out {
				out[i] = lookup(v.Index(i).Interface(), k)
			}
			return out
		}
		if i, ok := index(key); ok && i >= 0 && i < v.Len() {
			return v.Index(i).Interface()
		}
	}
	return nil
}

// lookupKey is m[k], or else the value of a key equal to k ignoring case, or nil.
func lookupKey[V any](m map[string]V, k string) any {
	if v, ok := m[k]; ok {
		return v
	}
	for mk, v := range m {
		if strings.EqualFold(mk, k) {
			return v
		}
	}
	return nil
}

func index(key any) (int, bool) {
	switch k := key.(type) {
	case int:
		return k, true
	case int64:
		return int(k), true
	case float64:
		if k == math.Trunc(k) {
			return int(k), true
		}
	}
	return 0, false
}

func truthy(params ...any) (any, error) {
	if len(params) != 1 {
		return nil, fmt.Errorf("internal: truthiness of %d values", len(params))
	}
	return Truthy(params[0]), nil
}

// Truthy is GitHub's truthiness: false, 0, NaN, "" and null are false; everything else,
// including empty lists and objects, is true.
func Truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	}
	if f, ok := number(v); ok {
		return f != 0 && !math.IsNaN(f)
	}
	return true
}

// cmp compares loosely, as GitHub does: strings case-insensitively, mixed types as numbers.
func cmp(params ...any) (any, error) {
	if len(params) != 3 {
		return nil, fmt.Errorf("internal: comparison with %d arguments", len(params))
	}
	op, _ := params[0].(string)
	a, b := params[1], params[2]
	switch op {
	case "==":
		return looseEqual(a, b), nil
	case "!=":
		return !looseEqual(a, b), nil
	}
	var c int
	sa, aok := a.(string)
	sb, bok := b.(string)
	if aok && bok {
		c = strings.Compare(strings.ToLower(sa), strings.ToLower(sb))
	} else {
		x, y := toNumber(a), toNumber(b)
		if math.IsNaN(x) || math.IsNaN(y) {
			return false, nil
		}
		switch {
		case x < y:
			c = -1
		case x > y:
			c = 1
		}
	}
	switch op {
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	case ">=":
		return c >= 0, nil
	}
	return nil, fmt.Errorf("internal: unknown comparison %q", op)
}

func looseEqual(a, b any) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if sa, ok := a.(string); ok {
		if sb, ok := b.(string); ok {
			return strings.EqualFold(sa, sb)
		}
	}
	if ba, ok := a.(bool); ok {
		if bb, ok := b.(bool); ok {
			return ba == bb
		}
	}
	_, al := asList(a)
	_, bl := asList(b)
	_, am := a.(map[string]any)
	_, bm := b.(map[string]any)
	if al || bl || am || bm {
		return reflect.DeepEqual(a, b)
	}
	x, y := toNumber(a), toNumber(b)
	return x == y // NaN never equals anything
}

// number converts Go numeric types.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// toNumber is GitHub's coercion: null 0, booleans 1/0, numeric strings their value, others NaN.
func toNumber(v any) float64 {
	if f, ok := number(v); ok {
		return f
	}
	switch x := v.(type) {
	case nil:
		return 0
	case bool:
		if x {
			return 1
		}
		return 0
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return 0
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
		if n, err := strconv.ParseInt(s, 0, 64); err == nil {
			return float64(n)
		}
	}
	return math.NaN()
}

func asList(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out, true
	case nil, string, map[string]any:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = rv.Index(i).Interface()
		}
		return out, true
	}
	return nil, false
}

// Text formats a value the way it appears in a prompt: strings as is, numbers plainly
// (3, 2.5), booleans true/false, null as nothing, lists and objects as compact JSON.
func Text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return formatFloat(x)
	case json.Number:
		return x.String()
	}
	if f, ok := number(v); ok {
		return formatFloat(f)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func formatFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	}
	if _, ok := number(v); ok {
		return "a number"
	}
	if _, ok := asList(v); ok {
		return "a list"
	}
	return fmt.Sprintf("%T", v)
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
