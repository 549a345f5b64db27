package expr

import (
	"reflect"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/config"
)

func testContext() *Context {
	return &Context{
		Event: map[string]any{
			"pull_request": map[string]any{"number": 42.0, "title": "Fix it", "draft": false},
			"ref":          "refs/heads/main",
		},
		Routine: map[string]any{"name": "audit", "file": ".agents/audit.yaml"},
		Inputs:  map[string]string{"scope": "api", "my-input": "x"},
		Matrix:  map[string]any{"os": "linux", "n": 3},
		Env:     map[string]string{"MODE": "strict"},
		Needs: map[string]Need{
			"plan": {Result: "success", Outputs: map[string]any{"tasks": `["a","b"]`, "list": []any{"x", "y"}}},
			"audit": {Result: "failure", Counts: map[string]int{"success": 1, "failure": 1},
				Outputs: []any{map[string]any{"verdict": "yes"}, map[string]any{"verdict": "no"}}},
		},
	}
}

func TestTemplateValue(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want any
	}{
		{"text without expressions is kept as is", "plain ${ not } {{ this }}", "plain ${ not } {{ this }}"},
		{"numbers render plainly", "PR ${{ event.pull_request.number }}: ${{ event.pull_request.title }}", "PR 42: Fix it"},
		{"a single expression keeps its type", "${{ fromJSON(needs.plan.outputs.tasks) }}", []any{"a", "b"}},
		{"a single expression with spaces around keeps its type", "  ${{ matrix.n }}\n", 3},
		{"outputs of a fanned-out need project to a list", "${{ needs.audit.outputs.verdict }}", []any{"yes", "no"}},
		{"missing properties are empty", "[${{ event.nope.deeper.x }}]", "[]"},
		{"hyphenated names read properties", "${{ inputs.my-input }}", "x"},
		{"== is case-insensitive on strings", "${{ inputs.scope == 'API' }}", true},
		{"|| gives the first truthy value", "${{ inputs.missing || 'default' }}", "default"},
		{"&& gives the last value when all are truthy", "${{ inputs.scope && env.MODE }}", "strict"},
		{"! negates truthiness", "${{ !inputs.missing }}", true},
		{"comparisons coerce like GitHub", "${{ matrix.n > '2' }}", true},
		{"single quotes escape by doubling", "${{ 'it''s' }}", "it's"},
		{"null is null", "${{ null }}", nil},
		{"contains on a list is case-insensitive", "${{ contains(needs.audit.outputs.verdict, 'YES') }}", true},
		{"contains on a string is a substring test", "${{ contains(event.ref, 'MAIN') }}", true},
		{"startsWith and endsWith ignore case", "${{ startsWith('Hello', 'he') && endsWith('Hello', 'LO') }}", true},
		{"function names ignore case like GitHub", "${{ toJson(matrix.os) }}", `"linux"`},
		{"format fills positions and keeps escaped braces", "${{ format('{{{0}}}-{1}', 'a', 3) }}", "{a}-3"},
		{"join joins lists", "${{ join(needs.plan.outputs.list, '+') }}", "x+y"},
		{"join defaults to a comma", "${{ join(needs.plan.outputs.list) }}", "x,y"},
		{"maps render as compact JSON in text", "m=${{ matrix }}", `m={"n":3,"os":"linux"}`},
		{"results and counts are readable", "${{ needs.audit.result }} ${{ needs.audit.counts.failure }}", "failure 1"},
		{"routine context", "${{ routine.name }}", "audit"},
		{"a }} inside a string does not end the expression", "${{ '}}' }}!", "}}!"},
		{"expr builtins stay available", "${{ len(needs.audit.outputs) }}", 2},
		{"property names that are expr keywords", "${{ event.in }}|${{ event.contains }}", "|"},
		{"status functions at plan time", "${{ success() }} ${{ failure() }}", "true false"},
		{"env properties ignore case", "${{ env.mode }} ${{ env['MODE'] }} [${{ env.nope }}]", "strict strict []"},
		{"a whole env is an object", "${{ env }}", map[string]any{"MODE": "strict"}},
		{"env read whole and by property in one template", "${{ env.MODE }} ${{ env }}", `strict {"MODE":"strict"}`},
		{"whole inputs reach functions as an object", "${{ toJSON(inputs) == toJSON(fromJSON('{\"my-input\":\"x\",\"scope\":\"api\"}')) }}", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm, err := CompileTemplate(tt.src, config.Pos{File: "f.yaml", Line: 3, Col: 10})
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			got, err := tm.Value(testContext())
			if err != nil {
				t.Fatalf("value: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Value = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestTemplateCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"secrets are refused", "x ${{ secrets.TOKEN }}", "f.yaml:3:16: in ${{ secrets.TOKEN }}: secrets are never interpolated"},
		{"github context points to event", "${{ github.event.number }}", "there is no `github` context"},
		{"unknown names list the contexts", "${{ evnt.ref }}", `f.yaml:3:14: in ${{ evnt.ref }}: unknown name "evnt"`},
		{"unknown functions list the functions", "${{ hashFiles('x') }}", "unknown function hashFiles()"},
		{"syntax errors point at the token", "${{ 1 + }}", "f.yaml:3:17:"},
		{"unterminated expression", "a ${{ b", "f.yaml:3:12: unterminated ${{"},
		{"empty expression", "${{ }}", "empty ${{ }} expression"},
		{"unterminated string", "${{ 'abc }}", "unterminated"},
		{"status functions take no arguments", "${{ success(1) }}", "success() takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileTemplate(tt.src, config.Pos{File: "f.yaml", Line: 3, Col: 10})
			if err == nil {
				t.Fatal("compiled without error")
			}
			if _, ok := err.(*config.Error); !ok {
				t.Errorf("error is %T, want *config.Error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestTemplateEvalErrors(t *testing.T) {
	tm, err := CompileTemplate("x ${{ fromJSON(inputs.scope) }}", config.Pos{File: "f.yaml", Line: 7})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tm.Render(testContext())
	if err == nil || !strings.Contains(err.Error(), "f.yaml:7: evaluating ${{ fromJSON(inputs.scope) }}: fromJSON(): not valid JSON") {
		t.Errorf("err = %v", err)
	}
}

func TestTemplatePartialAndRefs(t *testing.T) {
	tm, err := CompileTemplate("Audit ${{ matrix.os }} for ${{ needs.plan.outputs.x }} on ${{ event.ref }}", config.Pos{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := tm.Partial(testContext(), CtxNeeds)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Audit linux for ${{ needs.plan.outputs.x }} on refs/heads/main"; got != want {
		t.Errorf("Partial = %q, want %q", got, want)
	}
	if !tm.Uses(CtxNeeds) || !tm.Uses(CtxMatrix) || tm.Uses(CtxInputs) {
		t.Error("Uses reports the wrong contexts")
	}
	if n := tm.Needs(); len(n) != 1 || n[0] != "plan" {
		t.Errorf("Needs = %v, want [plan]", n)
	}
}

func TestCondition(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		status *Status
		want   bool
	}{
		{"empty is success()", "", &Status{Success: true}, true},
		{"empty is false after a failure", "", &Status{Failure: true}, false},
		{"bare expression", "needs.plan.result == 'success'", nil, true},
		{"wrapped expression", "${{ needs.plan.result == 'success' }}", nil, true},
		{"no status function means success() &&", "needs.plan.result == 'success'", &Status{Failure: true}, false},
		{"always() overrides", "always()", &Status{Failure: true}, true},
		{"failure()", "failure()", &Status{Failure: true}, true},
		{"cancelled()", "cancelled()", &Status{Cancelled: true}, true},
		{"a truthy string", "inputs.scope", nil, true},
		{"a missing value is false", "inputs.nope", nil, false},
		{"outputs projected from a fan-out", "contains(needs.audit.outputs.verdict, 'no')", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := CompileCondition(tt.src, config.Pos{File: "f.yaml", Line: 1})
			if err != nil {
				t.Fatal(err)
			}
			ctx := testContext()
			ctx.Status = tt.status
			got, err := c.Eval(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Eval = %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := CompileCondition("${{ a }} && ${{ b }}", config.Pos{}); err == nil {
		t.Error("a condition of two ${{ }} compiled")
	}
	if _, err := CompileCondition("x ${{ success() }}", config.Pos{}); err == nil || !strings.Contains(err.Error(), "always be true") {
		t.Errorf("a condition mixing text and ${{ }}: err = %v", err)
	}
}

func TestText(t *testing.T) {
	for _, tt := range []struct {
		in   any
		want string
	}{
		{nil, ""}, {"s", "s"}, {true, "true"}, {3, "3"}, {3.0, "3"}, {2.5, "2.5"}, {1e21, "1000000000000000000000"},
		{[]any{"a", 1.0}, `["a",1]`}, {map[string]any{"k": "<v>"}, `{"k":"<v>"}`},
	} {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
