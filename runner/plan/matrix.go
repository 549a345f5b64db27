package plan

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/agentrunner/agentrunner/runner/expr"
)

// combo is one matrix combination with its keys in display order: axes first, in file
// order, then keys added by include.
type combo struct {
	keys []string
	vals map[string]any
}

func (c combo) set(k string, v any) combo {
	if _, ok := c.vals[k]; !ok {
		c.keys = append(c.keys, k)
	}
	c.vals[k] = v
	return c
}

// product is the cartesian product of the axes, the first axis outermost. Each combination
// is built once, at its final size, rather than grown axis by axis.
func product(axes []axis) []combo {
	if len(axes) == 0 {
		return nil
	}
	n := 1
	for _, ax := range axes {
		n *= len(ax.values)
	}
	// Every combination has the same keys, so they share one slice. Its capacity is its
	// length: a key an include adds to one combination (set) copies it first.
	keys := make([]string, 0, len(axes))
	for _, ax := range axes {
		if !slices.Contains(keys, ax.name) {
			keys = append(keys, ax.name)
		}
	}
	keys = slices.Clip(keys)
	combos := make([]combo, n)
	for i := range combos {
		vals := make(map[string]any, len(keys))
		// Combination i picks, on each axis, digit i / stride of i in mixed radix.
		rest, stride := i, n
		for _, ax := range axes {
			stride /= len(ax.values)
			vals[ax.name] = ax.values[rest/stride]
			rest %= stride
		}
		combos[i] = combo{keys: keys, vals: vals}
	}
	return combos
}

// expandMatrix expands axes (all with values) with GitHub Actions semantics: the cartesian
// product with the first axis outermost; then exclude removes every combination that matches
// all of an entry's keys; then each include entry is merged into every original combination
// whose axis values it does not change (its extra keys may overwrite what earlier includes
// added), and becomes a combination of its own when it fits none.
func expandMatrix(axes []axis, include, exclude []map[string]any) []combo {
	combos := product(axes)
	if len(exclude) > 0 {
		kept := combos[:0]
		for _, c := range combos {
			if !excluded(c, exclude) {
				kept = append(kept, c)
			}
		}
		combos = kept
	}
	isAxis := make(map[string]bool, len(axes))
	for _, ax := range axes {
		isAxis[ax.name] = true
	}
	original := len(combos)
	for _, inc := range include {
		keys := sortedKeys(inc)
		merged := false
		for i := range original {
			c := combos[i]
			fits := true
			for _, k := range keys {
				if isAxis[k] && !sameValue(c.vals[k], inc[k]) {
					fits = false
					break
				}
			}
			if !fits {
				continue
			}
			merged = true
			for _, k := range keys {
				if !isAxis[k] {
					combos[i] = combos[i].set(k, inc[k])
				}
			}
		}
		if !merged {
			c := combo{vals: map[string]any{}}
			for _, ax := range axes {
				if v, ok := inc[ax.name]; ok {
					c = c.set(ax.name, v)
				}
			}
			for _, k := range keys {
				c = c.set(k, inc[k])
			}
			combos = append(combos, c)
		}
	}
	return combos
}

func excluded(c combo, exclude []map[string]any) bool {
	for _, ex := range exclude {
		if len(ex) == 0 {
			continue
		}
		all := true
		for k, v := range ex {
			cv, ok := c.vals[k]
			if !ok || !sameValue(cv, v) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// sameValue compares matrix values from YAML (int) and JSON (float64) alike.
func sameValue(a, b any) bool {
	if fa, ok := toFloat(a); ok {
		fb, ok := toFloat(b)
		return ok && fa == fb
	}
	return reflect.DeepEqual(a, b)
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// dynamicCombos evaluates a dynamic matrix: each axis expression must give a list; a
// whole-matrix expression gives a list of objects (the combinations) or an object of axes
// with optional include/exclude.
func (ca *compiledAgent) dynamicCombos(ctx *expr.Context) ([]combo, error) {
	m := ca.a.Matrix
	if ca.matrixExpr != nil {
		v, err := ca.matrixExpr.Value(ctx)
		if err != nil {
			return nil, err
		}
		switch x := v.(type) {
		case []any:
			combos := make([]combo, 0, len(x))
			for i, el := range x {
				obj, ok := el.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("agent %s: matrix: element %d is %s, want an object of axis: value", ca.a.Name, i, describe(el))
				}
				c := combo{vals: map[string]any{}}
				for _, k := range sortedKeys(obj) {
					c = c.set(k, obj[k])
				}
				combos = append(combos, c)
			}
			return combos, nil
		case map[string]any:
			var axes []axis
			var include, exclude []map[string]any
			for _, k := range sortedKeys(x) {
				switch k {
				case "include", "exclude":
					list, err := objectList(x[k])
					if err != nil {
						return nil, fmt.Errorf("agent %s: matrix.%s: %w", ca.a.Name, k, err)
					}
					if k == "include" {
						include = list
					} else {
						exclude = list
					}
				default:
					vals, ok := x[k].([]any)
					if !ok {
						return nil, fmt.Errorf("agent %s: matrix axis %s is %s, want a list", ca.a.Name, k, describe(x[k]))
					}
					axes = append(axes, axis{name: k, values: vals})
				}
			}
			return expandMatrix(axes, include, exclude), nil
		}
		return nil, fmt.Errorf("agent %s: matrix expression %s gave %s, want a list of objects or an object of axes%s",
			ca.a.Name, strings.TrimSpace(ca.matrixExpr.Source()), describe(v), jsonHint(v))
	}
	axes := make([]axis, len(ca.axes))
	for i, ax := range ca.axes {
		axes[i] = ax
		if ax.expr == nil {
			continue
		}
		v, err := ax.expr.Value(ctx)
		if err != nil {
			return nil, err
		}
		list, ok := v.([]any)
		if !ok {
			if s, isStrings := v.([]string); isStrings {
				list = make([]any, len(s))
				for j := range s {
					list[j] = s[j]
				}
			} else {
				return nil, fmt.Errorf("agent %s: matrix axis %s: %s gave %s, want a list%s",
					ca.a.Name, ax.name, strings.TrimSpace(ax.expr.Source()), describe(v), jsonHint(v))
			}
		}
		axes[i].values = list
	}
	return expandMatrix(axes, m.Include, m.Exclude), nil
}

func objectList(v any) ([]map[string]any, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("got %s, want a list of objects", describe(v))
	}
	out := make([]map[string]any, len(list))
	for i, el := range list {
		obj, ok := el.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("element %d is %s, want an object", i, describe(el))
		}
		out[i] = obj
	}
	return out, nil
}

func jsonHint(v any) string {
	if s, ok := v.(string); ok && strings.HasPrefix(strings.TrimSpace(s), "[") {
		return "; the value is JSON text, so wrap it in fromJSON(...)"
	}
	if v == nil {
		return "; did the earlier agent write that output?"
	}
	return ""
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("the string %q", clip(x, 40))
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case float64, int:
		return "the number " + expr.Text(x)
	}
	return fmt.Sprintf("a %T", v)
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// labels names each combination for instance IDs: its values joined by commas (audit[api,linux]).
// When a value is long, structured or has characters that would make IDs ambiguous, or two
// combinations would get the same label, every combination is numbered instead (audit[3]), so
// one node's IDs always follow one rule.
func labels(combos []combo) []string {
	out := make([]string, len(combos))
	seen := make(map[string]bool, len(combos))
	ok := true
	for i, c := range combos {
		parts := make([]string, len(c.keys))
		for j, k := range c.keys {
			s, good := labelValue(c.vals[k])
			if !good {
				ok = false
				break
			}
			parts[j] = s
		}
		if !ok {
			break
		}
		out[i] = strings.Join(parts, ",")
		if out[i] == "" || seen[out[i]] {
			ok = false
			break
		}
		seen[out[i]] = true
	}
	if !ok {
		for i := range out {
			out[i] = fmt.Sprint(i + 1)
		}
	}
	return out
}

const maxLabelValue = 40

func labelValue(v any) (string, bool) {
	switch v.(type) {
	case pending:
		return "*", true
	case nil, map[string]any, []any:
		return "", false
	}
	s := expr.Text(v)
	if s == "" || len(s) > maxLabelValue {
		return "", false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("._-/:@+", r):
		default:
			return "", false
		}
	}
	return s, true
}
