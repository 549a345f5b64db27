package plan

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/runner/event"
)

func loadYAML(t testing.TB, files map[string]string) *config.Config {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, src := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(src)}
	}
	cfg, err := config.LoadFS(fsys, ".")
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return cfg
}

func pushEvent() *event.Event {
	return &event.Event{Kind: event.KindPush, Ref: "refs/heads/main", Branch: "main", SHA: "abc",
		Repo: event.Repo{Owner: "o", Name: "r"}}
}

func node(t testing.TB, p *Plan, agent string) *Node {
	t.Helper()
	for _, r := range p.Runs {
		for _, n := range r.Nodes {
			if n.Agent == agent {
				return n
			}
		}
	}
	t.Fatalf("no node %s in plan", agent)
	return nil
}

const fanOutYAML = `
on: {push: {}}
max-fan-out: 300
defaults: {image: img}
agents:
  plan:
    command: [plan]
    outputs: [tasks]
  audit:
    needs: [plan]
    command: [audit, "${{ matrix.task }}"]
    matrix: {task: "${{ fromJSON(needs.plan.outputs.tasks) }}"}
    prompt: "Audit ${{ matrix.task }} (plan said ${{ needs.plan.outputs.note }})"
  whole:
    needs: [plan]
    command: [w, "${{ matrix.a }}-${{ matrix.b }}"]
    matrix: "${{ needs.plan.outputs.matrix }}"
  verify:
    needs: [audit]
    command: [verify, "${{ join(needs.audit.outputs.verdict, ',') }}"]
  gate:
    needs: [audit]
    if: "contains(needs.audit.outputs.verdict, 'no')"
    command: [gate]
  cleanup:
    needs: [audit]
    if: always()
    command: [cleanup]
  onfail:
    needs: [audit]
    if: failure()
    command: [onfail]
  oncancel:
    needs: [audit]
    if: cancelled()
    command: [oncancel]
`

func TestExpand(t *testing.T) {
	cfg := loadYAML(t, map[string]string{"w.yaml": fanOutYAML})
	p, err := Build(cfg, pushEvent(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	many := make([]any, 300)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	tests := []struct {
		name    string
		agent   string
		st      State
		wantIDs []string
		argv    []string // argv of the first instance
		prompt  string   // prompt of the first instance
		err     string
	}{
		{
			name:  "a dynamic axis from JSON text fans out one instance per task",
			agent: "audit",
			st: State{Needs: map[string]NeedResult{"plan": {Result: ResultSuccess,
				Outputs: map[string]any{"tasks": `["api","web"]`, "note": "hi"}}}},
			wantIDs: []string{"audit[api]", "audit[web]"},
			argv:    []string{"audit", "api"},
			prompt:  "Audit api (plan said hi)",
		},
		{
			name:  "a dynamic axis from a JSON list output works without parsing",
			agent: "audit",
			st: State{Needs: map[string]NeedResult{"plan": {Result: ResultSuccess,
				Outputs: map[string]any{"tasks": []any{"x"}}}}},
			wantIDs: []string{"audit[x]"},
			argv:    []string{"audit", "x"},
		},
		{
			name:  "long task descriptions get numbered IDs and stay one argv element",
			agent: "audit",
			st: State{Needs: map[string]NeedResult{"plan": {Result: ResultSuccess,
				Outputs: map[string]any{"tasks": []any{"fix the flaky test; rm -rf / && echo pwned", "b"}}}}},
			wantIDs: []string{"audit[1]", "audit[2]"},
			argv:    []string{"audit", "fix the flaky test; rm -rf / && echo pwned"},
		},
		{
			name:  "an empty task list gives no instances",
			agent: "audit",
			st: State{Needs: map[string]NeedResult{"plan": {Result: ResultSuccess,
				Outputs: map[string]any{"tasks": "[]"}}}},
			wantIDs: []string{},
		},
		{
			name:  "a missing output is a clear error",
			agent: "audit",
			st:    State{Needs: map[string]NeedResult{"plan": {Result: ResultSuccess, Outputs: map[string]any{}}}},
			err:   "gave null",
		},
		{
			name:  "JSON text without fromJSON gets a hint",
			agent: "whole",
			st: State{Needs: map[string]NeedResult{"plan": {Result: ResultSuccess,
				Outputs: map[string]any{"matrix": `[{"a":1}]`}}}},
			err: "wrap it in fromJSON",
		},
		{
			name:  "a fan-out over the cap names the agent and the count",
			agent: "audit",
			st: State{Needs: map[string]NeedResult{"plan": {Result: ResultSuccess,
				Outputs: map[string]any{"tasks": append(many, "one-more")}}}},
			err: "agent audit fans out to 301 instances, over the routine's max-fan-out of 300",
		},
		{
			name:  "a whole-matrix object expands axes with include",
			agent: "whole",
			st: State{Needs: map[string]NeedResult{"plan": {Result: ResultSuccess,
				Outputs: map[string]any{"matrix": map[string]any{"a": []any{1.0, 2.0}, "b": []any{"x"},
					"include": []any{map[string]any{"a": 3.0, "b": "y"}}}}}}},
			wantIDs: []string{"whole[1,x]", "whole[2,x]", "whole[3,y]"},
			argv:    []string{"w", "1-x"},
		},
		{
			name:  "a fanned-out need's outputs project to the list of one key",
			agent: "verify",
			st: State{Needs: map[string]NeedResult{"audit": {Result: ResultSuccess,
				Outputs: []any{map[string]any{"verdict": "yes"}, map[string]any{"verdict": "no"}, map[string]any{}}}}},
			wantIDs: []string{"verify"},
			argv:    []string{"verify", "yes,no,"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := node(t, p, tt.agent)
			if !n.Dynamic {
				t.Fatalf("node %s is not dynamic", tt.agent)
			}
			insts, err := n.Expand(tt.st)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Expand error = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Expand: %v", err)
			}
			ids := []string{}
			for _, in := range insts {
				ids = append(ids, in.ID)
			}
			if strings.Join(ids, " ") != strings.Join(tt.wantIDs, " ") {
				t.Errorf("IDs = %v, want %v", ids, tt.wantIDs)
			}
			if tt.argv != nil && strings.Join(insts[0].Argv, "\x00") != strings.Join(tt.argv, "\x00") {
				t.Errorf("argv = %q, want %q", insts[0].Argv, tt.argv)
			}
			if tt.prompt != "" && insts[0].Prompt != tt.prompt {
				t.Errorf("prompt = %q, want %q", insts[0].Prompt, tt.prompt)
			}
		})
	}
}

func TestExpandStaticReturnsInstances(t *testing.T) {
	cfg := loadYAML(t, map[string]string{"w.yaml": fanOutYAML})
	p, err := Build(cfg, pushEvent(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := node(t, p, "plan")
	insts, err := n.Expand(State{})
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 1 || insts[0] != n.Instances[0] {
		t.Errorf("Expand of a static node = %v, want its Instances", insts)
	}
}

func TestCondition(t *testing.T) {
	cfg := loadYAML(t, map[string]string{"w.yaml": fanOutYAML})
	p, err := Build(cfg, pushEvent(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ok := map[string]NeedResult{"audit": {Result: ResultSuccess, Outputs: []any{map[string]any{"verdict": "yes"}}}}
	saidNo := map[string]NeedResult{"audit": {Result: ResultSuccess, Outputs: []any{map[string]any{"verdict": "NO"}}}}
	failed := map[string]NeedResult{"audit": {Result: ResultFailure}}
	noQuorum := map[string]NeedResult{"audit": {Result: ResultNoQuorum}}
	skipped := map[string]NeedResult{"audit": {Result: ResultSkipped}}
	tests := []struct {
		name  string
		agent string
		st    State
		want  bool
	}{
		{"no if: runs when every need succeeded", "verify", State{Needs: ok}, true},
		{"no if: does not run after a failure", "verify", State{Needs: failed}, false},
		{"no if: does not run after a skipped need", "verify", State{Needs: skipped}, false},
		{"no if: does not run when cancelled", "verify", State{Needs: ok, Cancelled: true}, false},
		{"no if: does not run when a need is missing from the state", "verify", State{}, false},
		{"an if: without status function is implicitly success() &&", "gate", State{Needs: failed}, false},
		{"an if: reading projected outputs is case-insensitive", "gate", State{Needs: saidNo}, true},
		{"an if: that is false does not run", "gate", State{Needs: ok}, false},
		{"always() runs after a failure", "cleanup", State{Needs: failed}, true},
		{"always() runs when cancelled", "cleanup", State{Needs: ok, Cancelled: true}, true},
		{"failure() runs after a failure", "onfail", State{Needs: failed}, true},
		{"failure() runs after a missed quorum", "onfail", State{Needs: noQuorum}, true},
		{"failure() does not run after success", "onfail", State{Needs: ok}, false},
		{"cancelled() runs when cancelled", "oncancel", State{Needs: ok, Cancelled: true}, true},
		{"cancelled() does not run otherwise", "oncancel", State{Needs: ok}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := node(t, p, tt.agent).Condition(tt.st)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Condition = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPlanSurvivesJSON(t *testing.T) {
	cfg := loadYAML(t, map[string]string{"w.yaml": fanOutYAML})
	p, err := Build(cfg, pushEvent(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("marshal plan: %v", err)
	}
	var back Plan
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	n := back.Runs[0].Nodes[1]
	if _, err := n.Expand(State{}); err == nil || !strings.Contains(err.Error(), "not made by plan.Build") {
		t.Errorf("Expand of a decoded dynamic node: err = %v, want a clear error", err)
	}
	if got, err := back.Runs[0].Nodes[0].Expand(State{}); err != nil || len(got) != 1 {
		t.Errorf("Expand of a decoded static node = %v, %v; want its instances", got, err)
	}
}

// The model APIs an instance calls follow the preset's `with:` options: aider's depend on its
// model, and the egress proxy serves only those.
func TestInstanceAPIsFollowWith(t *testing.T) {
	cfg := loadYAML(t, map[string]string{"r.yaml": `
on: {push: {}}
secrets: [ANTHROPIC_API_KEY, OPENAI_API_KEY]
agents:
  gpt: {uses: aider, with: {model: gpt-4o}, prompt: p, image: x}
  sonnet: {uses: aider, with: {model: anthropic/claude-sonnet-4}, prompt: p, image: x}
  any: {uses: aider, prompt: p, image: x}
  claude: {uses: claude-code, prompt: p, image: x}
  plain: {command: [make], image: x}
`})
	p, err := Build(cfg, pushEvent(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for agent, want := range map[string][]string{
		"gpt": {"openai"}, "sonnet": {"anthropic"}, "any": {"anthropic", "openai", "gemini"},
		"claude": {"anthropic"}, "plain": nil,
	} {
		got := node(t, p, agent).Instances[0].APIs
		if !slices.Equal(got, want) {
			t.Errorf("%s: APIs %q, want %q", agent, got, want)
		}
	}
}
