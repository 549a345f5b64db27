package plan

import (
	"errors"
	"strings"
	"testing"
)

const orchestratorYAML = `
on: {push: {}}
secrets: [API_KEY]
defaults: {image: orch:1}
env: {TEAM: core}
agents:
  migrate:
    command: [orchestrate]
    orchestrate: {images: [orch:1, worker:2], max-agents: 30, max-instances: 24}
  talk:
    uses: claude-code
    prompt: Plan the migration.
    secrets: [API_KEY]
    orchestrate: true
  after:
    needs: migrate
    command: [report, "${{ needs.migrate.outputs.summary }}"]
`

const threeStages = `agents:
  plan: {command: [plan], outputs: [services]}
  edit:
    needs: plan
    image: worker:2
    command: [edit, "${{ matrix.svc }}", "${{ env.TEAM }}"]
    matrix: {svc: "${{ fromJSON(needs.plan.outputs.services) }}"}
    changes: keep
  check:
    needs: edit
    command: [check]
    replicas: 3
    vote: ok
    outputs: [ok]
`

func orchestrator(t *testing.T, name string) *Node {
	t.Helper()
	p, err := Build(loadYAML(t, map[string]string{"m.yaml": orchestratorYAML}), pushEvent(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return node(t, p, name)
}

func TestBuildWorkflowNamesItsAgentsUnderTheOrchestrator(t *testing.T) {
	n := orchestrator(t, "migrate")
	if n.Orchestrate == nil || n.Orchestrate.Image != "orch:1" || strings.Join(n.Orchestrate.Secrets, ",") != "API_KEY" {
		t.Fatalf("orchestrator node: %+v", n.Orchestrate)
	}
	wf, err := n.BuildWorkflow("workflow.yaml", []byte(threeStages))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range wf.Nodes {
		names = append(names, s.Agent+"<"+strings.Join(s.Needs, ",")+">")
	}
	if got := strings.Join(names, " "); got != "migrate/plan<> migrate/edit<migrate/plan> migrate/check<migrate/edit>" {
		t.Errorf("nodes %s", got)
	}
	if id := wf.Nodes[0].Instances[0].ID; id != "migrate/plan" {
		t.Errorf("plan's instance id %q", id)
	}
	// The dynamic fan-out reads needs.plan by the workflow's own name.
	insts, err := wf.Nodes[1].Expand(State{Needs: map[string]NeedResult{
		"migrate/plan": {Result: ResultSuccess, Outputs: map[string]any{"services": `["api","web"]`}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 2 || insts[0].ID != "migrate/edit[api]" || insts[0].Agent != "migrate/edit" || strings.Join(insts[0].Argv, " ") != "edit api core" || insts[0].Image != "worker:2" {
		t.Errorf("edit instances: %+v", insts[0])
	}
	if c := wf.Nodes[2]; len(c.Instances) != 3 || c.Instances[2].ID != "migrate/check#3" {
		t.Errorf("check instances %d", len(c.Instances))
	}
	// Past the envelope's per-agent cap at run time: refused when it expands.
	many := `["` + strings.Repeat(`x","`, 30) + `y"]`
	if _, err := wf.Nodes[1].Expand(State{Needs: map[string]NeedResult{"migrate/plan": {Result: ResultSuccess, Outputs: map[string]any{"services": many}}}}); err == nil || !strings.Contains(err.Error(), "24") {
		t.Errorf("31 instances over max-instances 24: %v", err)
	}
}

func TestBuildWorkflowRefusesWhatTheEnvelopeDoesNot(t *testing.T) {
	n := orchestrator(t, "migrate")
	_, err := n.BuildWorkflow("workflow.yaml", []byte(`agents:
  a: {command: [x], image: evil:1}
  b: {command: [x], network: open}
  c: {command: [x], secrets: [OTHER]}
  d: {command: [x], replicas: 20, vote: v, outputs: [v]}
  e: {command: [x], replicas: 20, vote: v, outputs: [v]}
  f: {command: [x], orchestrate: true}
`))
	var we *WorkflowError
	if !errors.As(err, &we) {
		t.Fatalf("err = %v", err)
	}
	// A load error stops there: the secret and the nested orchestrator are what it names.
	for _, want := range []string{`asks for secret "OTHER"`, "orchestrates again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%s", want, err)
		}
	}
	_, err = n.BuildWorkflow("workflow.yaml", []byte(`agents:
  a: {command: [x], image: evil:1}
  b: {command: [x], network: open}
  d: {command: [x], replicas: 20, vote: v, outputs: [v]}
  e: {command: [x], replicas: 20, vote: v, outputs: [v]}
`))
	for _, want := range []string{
		`workflow.yaml:2:3: agent a: image "evil:1" is not one the envelope allows (orch:1, worker:2)`,
		"workflow.yaml:3:3: agent b: network open is wider than the orchestrator's (none)",
		"the workflow runs 42 agent instances; the envelope allows 30 in all",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %q:\n%v", want, err)
		}
	}
	if _, err := n.BuildWorkflow("workflow.yaml", []byte("agents: {a: {command: [x]\n")); err == nil || !strings.HasPrefix(err.Error(), "workflow.yaml:") {
		t.Errorf("a YAML error: %v", err)
	}
}

func TestOrchestratorPromptAndAttempts(t *testing.T) {
	n := orchestrator(t, "talk")
	first := n.Instances[0]
	for _, want := range []string{"Plan the migration.", "$AGENT_OUTPUT_DIR/workflow.yaml", "- matrix:", "images: orch:1", "secrets an agent may list: API_KEY", "no agent of the workflow may orchestrate"} {
		if !strings.Contains(first.Prompt, want) {
			t.Errorf("the orchestrator's prompt lacks %q", want)
		}
	}
	if !strings.Contains(strings.Join(first.Argv, " "), "$AGENT_OUTPUT_DIR/workflow.yaml") {
		t.Errorf("the preset's command line does not carry the contract: %q", first.Argv)
	}
	again, err := n.Attempt(first, 2, "workflow.yaml:1:1: bad")
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != "talk~2" || !strings.Contains(again.Prompt, "workflow.yaml:1:1: bad") || !strings.Contains(strings.Join(again.Argv, " "), "workflow.yaml:1:1: bad") || first.ID != "talk" {
		t.Errorf("attempt 2: %s %q", again.ID, again.Argv)
	}
	// A command orchestrator is not told the contract in its argv (its program is the user's).
	if m := orchestrator(t, "migrate"); strings.Contains(strings.Join(m.Instances[0].Argv, " "), "workflow") {
		t.Errorf("command orchestrator argv %q", m.Instances[0].Argv)
	}
}
