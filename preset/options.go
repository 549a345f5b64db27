package preset

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// opts is a routine's `with:` map. Values come from YAML (int, string, bool, []any) or JSON
// (float64), so the accessors accept both number forms.
type opts = map[string]any

type kind int

const (
	kString  kind = iota // non-empty string
	kPosInt              // integer > 0
	kBool                // true/false
	kStrings             // a string or a list of strings
	kEnum                // one of option.enum
)

// option is one `with:` key a preset accepts.
type option struct {
	name string
	kind kind
	enum []string
}

// WithError is one problem in a `with:` map. Config validation turns it into a positioned
// error; Key lets it point at the right line.
type WithError struct {
	Preset string
	Key    string
	Msg    string
}

func (e *WithError) Error() string {
	return fmt.Sprintf("with.%s: %s (preset %s)", e.Key, e.Msg, e.Preset)
}

// Options lists the `with:` keys the preset accepts, sorted.
func (p *Preset) Options() []string {
	out := make([]string, len(p.options))
	for i, o := range p.options {
		out[i] = o.name
	}
	sort.Strings(out)
	return out
}

// CheckWith reports every unknown key and every value of the wrong type in with, as
// *WithError values joined with errors.Join, in key order.
func (p *Preset) CheckWith(with map[string]any) error {
	keys := make([]string, 0, len(with))
	for k := range with {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		o, ok := p.option(k)
		if !ok {
			errs = append(errs, &WithError{Preset: p.Name, Key: k,
				Msg: "unknown option; known: " + strings.Join(p.Options(), ", ")})
			continue
		}
		if msg := o.check(with[k]); msg != "" {
			errs = append(errs, &WithError{Preset: p.Name, Key: k, Msg: msg})
		}
	}
	return errors.Join(errs...)
}

func (p *Preset) option(name string) (option, bool) {
	for _, o := range p.options {
		if o.name == name {
			return o, true
		}
	}
	return option{}, false
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "string " + strconv.Quote(v)
	case bool:
		return "boolean " + strconv.FormatBool(v)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	default:
		return fmt.Sprintf("%T %v", v, v)
	}
}

func (o option) check(v any) string {
	switch o.kind {
	case kString:
		s, ok := v.(string)
		if !ok {
			return "want a string, got " + describe(v)
		}
		if strings.TrimSpace(s) == "" {
			return "must not be empty"
		}
	case kPosInt:
		n, ok := asInt(v)
		if !ok {
			return "want a whole number, got " + describe(v)
		}
		if n <= 0 {
			return fmt.Sprintf("must be at least 1, got %d", n)
		}
	case kBool:
		if _, ok := v.(bool); !ok {
			return "want true or false, got " + describe(v)
		}
	case kStrings:
		if _, ok := asStrings(v); !ok {
			return "want a string or a list of strings, got " + describe(v)
		}
	case kEnum:
		s, ok := v.(string)
		if !ok {
			return "want one of " + strings.Join(o.enum, ", ") + "; got " + describe(v)
		}
		for _, e := range o.enum {
			if s == e {
				return ""
			}
		}
		return fmt.Sprintf("%q is not one of %s", s, strings.Join(o.enum, ", "))
	}
	return ""
}

// asInt accepts the integer forms YAML and JSON decoders produce.
func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		if n > math.MaxInt32 || n < math.MinInt32 {
			return 0, false
		}
		return int(n), true
	case uint64:
		if n > math.MaxInt32 {
			return 0, false
		}
		return int(n), true
	case float64:
		if n != math.Trunc(n) || n > math.MaxInt32 || n < math.MinInt32 {
			return 0, false
		}
		return int(n), true
	}
	return 0, false
}

// asStrings accepts one string or a list of non-empty strings.
func asStrings(v any) ([]string, bool) {
	switch l := v.(type) {
	case string:
		if strings.TrimSpace(l) == "" {
			return nil, false
		}
		return []string{l}, true
	case []string:
		return l, len(l) > 0
	case []any:
		if len(l) == 0 {
			return nil, false
		}
		out := make([]string, len(l))
		for i, e := range l {
			s, ok := e.(string)
			if !ok || strings.TrimSpace(s) == "" {
				return nil, false
			}
			out[i] = s
		}
		return out, true
	}
	return nil, false
}

// The accessors below run after CheckWith, so a missing or mistyped value reads as absent.

func str(w opts, k string) string {
	s, _ := w[k].(string)
	return s
}

func integer(w opts, k string) (int, bool) {
	v, ok := w[k]
	if !ok {
		return 0, false
	}
	return asInt(v)
}

func boolean(w opts, k string) (value, set bool) {
	b, ok := w[k].(bool)
	return b, ok
}

func strs(w opts, k string) []string {
	v, ok := w[k]
	if !ok {
		return nil
	}
	l, _ := asStrings(v)
	return l
}
