package githubfake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/agentrunner/agentrunner/internal/fixture"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

var printer = message.NewPrinter(language.English)

// SpecEnv overrides where the OpenAPI description is read from (a file path).
const SpecEnv = "AGENTRUNNER_GITHUB_OPENAPI"

// specRelPath is where the description sits under the module's testdata folder.
const specRelPath = "github/openapi-subset.json"

// operation is one described method+path with what the fake checks about it.
type operation struct {
	id       string // operationId, e.g. "checks/create"
	method   string
	template string    // "/repos/{owner}/{repo}/check-runs"
	segs     []segment // template split on "/"
	query    map[string]queryParam
	body     *jsonschema.Schema // nil when the operation takes no body
	bodyReq  bool
}

type segment struct {
	literal string // set for a literal segment
	param   string // set for a {param}
	multi   bool   // the param may span several segments (x-multi-segment)
}

type queryParam struct {
	typ  string
	enum []string
}

type spec struct {
	path string
	ops  []*operation
}

// The description is read-only once loaded and compiling it takes a while, so every fake in the
// test binary shares one copy.
var (
	specOnce   sync.Once
	specCached *spec
	specErr    error
)

func loadSpec() (*spec, error) {
	specOnce.Do(func() {
		p, err := findSpec()
		if err != nil {
			specErr = err
			return
		}
		specCached, specErr = parseSpec(p)
	})
	return specCached, specErr
}

// findSpec returns the description committed at testdata/github/openapi-subset.json under the
// module root, unless SpecEnv names another file.
func findSpec() (string, error) {
	if p := os.Getenv(SpecEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("githubfake: %s=%q: %w", SpecEnv, p, err)
		}
		return p, nil
	}
	root, err := fixture.Root()
	if err != nil {
		return "", fmt.Errorf("githubfake: find the OpenAPI description: %w", err)
	}
	p := filepath.Join(root, filepath.FromSlash(specRelPath))
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("githubfake: GitHub's OpenAPI description is missing: %w (it is committed at testdata/%s; or set %s)", err, specRelPath, SpecEnv)
	}
	return p, nil
}

func parseSpec(path string) (*spec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("githubfake: read %s: %w", path, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("githubfake: parse %s: %w", path, err)
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, fmt.Errorf("githubfake: %s: not a JSON object", path)
	}
	doc = convertNullable(doc) // the root stays an object: only nullable schemas are wrapped
	root := doc.(map[string]any)

	// OpenAPI 3.0 schemas are a draft-04 dialect: $ref replaces its siblings, exclusiveMinimum is
	// a boolean. Formats (date-time) are asserted, as GitHub does.
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft4)
	const docURL = "file:///github-openapi.json"
	if err := c.AddResource(docURL, doc); err != nil {
		return nil, fmt.Errorf("githubfake: load %s into the schema compiler: %w", path, err)
	}

	paths, _ := root["paths"].(map[string]any)
	s := &spec{path: path}
	for tmpl, v := range paths {
		item, _ := v.(map[string]any)
		for method, ov := range item {
			op, ok := ov.(map[string]any)
			if !ok || !slices.Contains([]string{"get", "post", "patch", "put", "delete"}, method) {
				continue
			}
			o := &operation{method: strings.ToUpper(method), template: tmpl, query: map[string]queryParam{}}
			o.id, _ = op["operationId"].(string)
			multi := map[string]bool{}
			for _, pv := range op["parameters"].([]any) {
				p := resolve(root, pv)
				name, _ := p["name"].(string)
				switch p["in"] {
				case "path":
					multi[name], _ = p["x-multi-segment"].(bool)
				case "query":
					qp := queryParam{}
					if sch := resolve(root, p["schema"]); sch != nil {
						qp.typ, _ = sch["type"].(string)
						for _, e := range asSlice(sch["enum"]) {
							if es, ok := e.(string); ok {
								qp.enum = append(qp.enum, es)
							}
						}
					}
					o.query[name] = qp
				}
			}
			for _, part := range strings.Split(strings.TrimPrefix(tmpl, "/"), "/") {
				if strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}") {
					name := part[1 : len(part)-1]
					o.segs = append(o.segs, segment{param: name, multi: multi[name]})
				} else {
					o.segs = append(o.segs, segment{literal: part})
				}
			}
			if rb := resolve(root, op["requestBody"]); rb != nil {
				o.bodyReq, _ = rb["required"].(bool)
				ptr := "/paths/" + escPtr(tmpl) + "/" + method + "/requestBody/content/" + escPtr("application/json") + "/schema"
				if _, isRef := op["requestBody"].(map[string]any)["$ref"]; isRef {
					return nil, fmt.Errorf("githubfake: %s %s: requestBody $ref is not supported", o.method, tmpl)
				}
				sch, err := c.Compile(docURL + "#" + ptr)
				if err != nil {
					return nil, fmt.Errorf("githubfake: compile the request schema of %s %s: %w", o.method, tmpl, err)
				}
				o.body = sch
			}
			s.ops = append(s.ops, o)
		}
	}
	if len(s.ops) == 0 {
		return nil, fmt.Errorf("githubfake: %s describes no operations", path)
	}
	// Most literal segments first, so /git/ref/{ref} never shadows a more specific route.
	slices.SortFunc(s.ops, func(a, b *operation) int {
		if d := literals(b) - literals(a); d != 0 {
			return d
		}
		return strings.Compare(a.template+a.method, b.template+b.method)
	})
	return s, nil
}

func literals(o *operation) int {
	n := 0
	for _, s := range o.segs {
		if s.literal != "" {
			n++
		}
	}
	return n
}

func escPtr(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
	return url.PathEscape(s)
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// resolve follows a local "#/..." $ref (repeatedly) and returns the object, or nil.
func resolve(root map[string]any, v any) map[string]any {
	for range 16 {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m
		}
		v = any(root)
		for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			parent, _ := v.(map[string]any)
			v = parent[tok]
		}
	}
	return nil
}

// convertNullable rewrites OpenAPI 3.0's `nullable: true` into JSON Schema: a type union with
// "null", null added to an enum, or an anyOf when the schema has no plain type.
func convertNullable(v any) any {
	switch t := v.(type) {
	case []any:
		for i := range t {
			t[i] = convertNullable(t[i])
		}
		return t
	case map[string]any:
		for k, child := range t {
			t[k] = convertNullable(child)
		}
		if n, _ := t["nullable"].(bool); !n {
			return t
		}
		delete(t, "nullable")
		if typ, ok := t["type"].(string); ok {
			t["type"] = []any{typ, "null"}
			if enum, ok := t["enum"].([]any); ok && !slices.Contains(enum, nil) {
				t["enum"] = append(enum, nil)
			}
			return t
		}
		return map[string]any{"anyOf": []any{t, map[string]any{"type": "null"}}}
	}
	return v
}

// match finds the operation for method and the request's path segments (already unescaped).
// pathOK is true when some operation has this path but another method.
func (s *spec) match(method string, segs []string) (op *operation, params map[string]string, pathOK bool) {
	for _, o := range s.ops {
		p := map[string]string{}
		if !matchSegs(o.segs, segs, p) {
			continue
		}
		if o.method != method {
			pathOK = true
			continue
		}
		return o, p, true
	}
	return nil, nil, pathOK
}

func matchSegs(tmpl []segment, segs []string, params map[string]string) bool {
	if len(tmpl) == 0 {
		return len(segs) == 0
	}
	if len(segs) == 0 {
		return false
	}
	t := tmpl[0]
	switch {
	case t.literal != "":
		return t.literal == segs[0] && matchSegs(tmpl[1:], segs[1:], params)
	case !t.multi:
		if segs[0] == "" || !matchSegs(tmpl[1:], segs[1:], params) {
			return false
		}
		params[t.param] = segs[0]
		return true
	}
	// A multi-segment parameter takes as few segments as lets the rest match, at least one.
	for n := 1; n <= len(segs); n++ {
		if matchSegs(tmpl[1:], segs[n:], params) {
			params[t.param] = strings.Join(segs[:n], "/")
			return params[t.param] != ""
		}
	}
	return false
}

// checkQuery reports query parameters the operation does not describe or values of the wrong
// type.
func (o *operation) checkQuery(q url.Values) []string {
	var problems []string
	for name, vals := range q {
		qp, ok := o.query[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("query parameter %q is not described for %s %s", name, o.method, o.template))
			continue
		}
		for _, v := range vals {
			if len(qp.enum) > 0 && !slices.Contains(qp.enum, v) {
				problems = append(problems, fmt.Sprintf("query parameter %s=%q is not one of %v", name, v, qp.enum))
			}
			if qp.typ == "integer" {
				if _, err := strconv.ParseInt(v, 10, 64); err != nil {
					problems = append(problems, fmt.Sprintf("query parameter %s=%q is not an integer", name, v))
				}
			}
		}
	}
	slices.Sort(problems)
	return problems
}

// checkBody validates a JSON body against the operation's requestBody schema.
func (o *operation) checkBody(contentType string, body []byte) []string {
	if o.body == nil {
		return nil
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if o.bodyReq {
			return []string{fmt.Sprintf("%s %s requires a JSON body", o.method, o.template)}
		}
		return nil
	}
	if !strings.HasPrefix(contentType, "application/json") {
		return []string{fmt.Sprintf("body sent with Content-Type %q, want application/json", contentType)}
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return []string{fmt.Sprintf("body is not JSON: %v", err)}
	}
	if err := o.body.Validate(v); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return leafErrors(ve)
		}
		return []string{err.Error()}
	}
	return nil
}

// leafErrors flattens a validation error into "at /path: message" lines, keeping the leaves
// (the root message only names the schema).
func leafErrors(ve *jsonschema.ValidationError) []string {
	var out []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, fmt.Sprintf("at /%s: %s", strings.Join(e.InstanceLocation, "/"), e.ErrorKind.LocalizedString(printer)))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	return out
}

// mustJSON marshals v; the fake only marshals its own maps, so failure is a bug in the fake.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("githubfake: marshal response: %v", err))
	}
	return b
}
