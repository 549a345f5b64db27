package config

import (
	"strings"
	"testing"
	"time"
)

func TestOrchestrateDefaultsAndEnvelope(t *testing.T) {
	r, errs := Parse("m.yaml", []byte(`on: {dispatch: {}}
defaults: {image: orch:1}
agents:
  plain: {command: [x], orchestrate: true}
  custom:
    command: [x]
    orchestrate: {images: [a:1, b:2], max-agents: 200, max-instances: 24, max-depth: 2, timeout: 10m, retries: 0}
`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	p := r.Agent("plain").Orchestrate
	if p == nil || strings.Join(p.Images, ",") != "orch:1" || p.MaxAgents != DefaultOrchestrateMaxAgents || p.MaxInstances != DefaultOrchestrateMaxInstances ||
		p.MaxDepth != 1 || p.Timeout != time.Hour || p.Retries != DefaultOrchestrateRetries {
		t.Errorf("orchestrate: true = %+v", p)
	}
	c := r.Agent("custom").Orchestrate
	if strings.Join(c.Images, ",") != "a:1,b:2" || c.MaxAgents != 200 || c.MaxInstances != 24 || c.MaxDepth != 2 || c.Timeout != 10*time.Minute || c.Retries != 0 {
		t.Errorf("orchestrate envelope = %+v", c)
	}
	if _, errs := Parse("m.yaml", []byte("on: {dispatch: {}}\nagents:\n  o: {image: i, command: [x], orchestrate: false}\n")); len(errs) > 0 {
		t.Errorf("orchestrate: false: %v", errs)
	}
	_, errs = Parse("m.yaml", []byte("on: {dispatch: {}}\nagents:\n  o: {image: i, command: [x], replicas: 3, orchestrate: true}\n"))
	if !strings.Contains(errs.Error(), "m.yaml:3:") || !strings.Contains(errs.Error(), "cannot have a matrix or replicas") {
		t.Errorf("an orchestrator with replicas: %v", errs)
	}
}

func TestParseWorkflow(t *testing.T) {
	rules := WorkflowRules{Image: "orch:1", Secrets: []string{"API_KEY"}, Depth: 1}
	r, errs := ParseWorkflow("workflow.yaml", []byte(`agents:
  plan: {command: [plan], outputs: [tasks]}
  edit:
    needs: plan
    command: [edit, "${{ matrix.svc }}"]
    matrix: {svc: "${{ fromJSON(needs.plan.outputs.tasks) }}"}
    changes: keep
    secrets: [API_KEY]
  check: {needs: edit, command: [check], replicas: 3, vote: ok, outputs: [ok]}
`), rules)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if r.Name != "workflow" || r.Agent("edit").Image != "orch:1" || len(r.Agents) != 3 {
		t.Errorf("workflow = %s, agents %d, edit image %q", r.Name, len(r.Agents), r.Agent("edit").Image)
	}

	_, errs = ParseWorkflow("workflow.yaml", []byte(`on: {push: {}}
secrets: [OTHER]
publish: {check: true}
agents:
  a: {command: [x], secrets: [OTHER]}
  b: {command: [x], orchestrate: true}
`), rules)
	got := errs.Error()
	for _, want := range []string{
		"workflow.yaml:1:1: a workflow an agent writes has no on:",
		"workflow.yaml:2:1: a workflow an agent writes has no secrets:",
		"workflow.yaml:3:1: a workflow an agent writes has no publish:",
		`asks for secret "OTHER", which the routine does not list`,
		"orchestrates again, but the envelope's max-depth allows no further level",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q:\n%s", want, got)
		}
	}
	if _, errs := ParseWorkflow("workflow.yaml", []byte("agents:\n  b: {command: [x], orchestrate: true}\n"), WorkflowRules{Image: "i", Depth: 2}); len(errs) > 0 {
		t.Errorf("a nested orchestrator within max-depth: %v", errs)
	}
	if _, errs := ParseWorkflow("workflow.yaml", []byte("agents: [\n"), rules); len(errs) == 0 || !strings.HasPrefix(errs.Error(), "workflow.yaml:") {
		t.Errorf("a syntax error: %v", errs)
	}
}

func TestDescribeWorkflowFormatFollowsTheKeyTables(t *testing.T) {
	d := DescribeWorkflowFormat()
	for _, f := range agentObj.fields {
		if _, refused := workflowAgentKeys[f.key]; refused {
			if strings.Contains(d, "- "+f.key+": ") {
				t.Errorf("the description offers agent key %q, which workflows may not set", f.key)
			}
			continue
		}
		if f.key != "orchestrate" && !strings.Contains(d, "- "+f.key+": ") {
			t.Errorf("the description lacks agent key %q", f.key)
		}
	}
}

func TestBudget(t *testing.T) {
	r, errs := Parse("b.yaml", []byte("on: push\nbudget: {run: 2.50}\nagents: {a: {image: i, command: [x]}}\n"))
	if len(errs) > 0 || r.Budget == nil || r.Budget.Run != 2.5 {
		t.Fatalf("budget %+v %v", r, errs)
	}
	for src, want := range map[string]string{
		"on: push\nbudget: {run: 0}\nagents: {a: {image: i, command: [x]}}\n":    "b.yaml:2:15: run must be an amount of US dollars more than 0",
		"on: push\nbudget: {daily: 5}\nagents: {a: {image: i, command: [x]}}\n":  `b.yaml:2:10: unknown key "daily" in budget`,
		"on: push\nbudget: {run: lots}\nagents: {a: {image: i, command: [x]}}\n": "b.yaml:2:15:",
	} {
		if _, errs := Parse("b.yaml", []byte(src)); !strings.Contains(errs.Error(), want) {
			t.Errorf("%q: %v, want %q", src, errs, want)
		}
	}
	if _, errs := ParseWorkflow("workflow.yaml", []byte("budget: {run: 100}\nagents: {a: {command: [x]}}\n"), WorkflowRules{Image: "i", Depth: 1}); !strings.Contains(errs.Error(), "has no budget: its agents spend from the orchestrating run's budget") {
		t.Errorf("a workflow's own budget: %v", errs)
	}
}
