package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/runner/result"
)

// migrationWorkflow is what the test agent, as orchestrator, writes on its second attempt: a
// plan, a 24-way dynamic fan-out editing files, three replicas voting, and the consolidation
// the runner does with the edits.
func migrationWorkflow() string {
	var svcs []string
	for i := 1; i <= 24; i++ {
		svcs = append(svcs, fmt.Sprintf(`"svc%02d"`, i))
	}
	return `description: migrate every service off the old client
agents:
  plan:
    command: ["/testagent", "output-json", 'services=[` + strings.Join(svcs, ",") + `]']
    outputs: [services]
  edit:
    needs: plan
    matrix: {svc: "${{ fromJSON(needs.plan.outputs.services) }}"}
    changes: keep
    command: ["/testagent", "write", "services/${{ matrix.svc }}/client.txt=new client\n"]
  check:
    needs: edit
    replicas: 3
    quorum: 2
    vote: ok
    outputs: [ok]
    command: ["/testagent", "output", "ok=yes", "report", "All 24 services use the new client."]
`
}

// The test agent orchestrates in Docker: its first workflow does not load, the runner hands the
// errors back, and the second — a plan, 24 editing agents, 3 voting replicas — runs as part of
// the run; the patch holds the 24 edits, the report the first attempt's errors, the JSON
// progress the workflow's job names; save-workflow turns it into a routine that loads.
func TestExecRunsAnOrchestratedWorkflowInDocker(t *testing.T) {
	cli := dockertest.Client(t)
	dockertest.TestAgentImage(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	repo := gitRepo(t, map[string]string{
		"README.md":           "services\n",
		"plans/broken.yaml":   "agents:\n  plan: {command: [x]\n",
		"plans/workflow.yaml": migrationWorkflow(),
		".agents/migrate.yaml": `on:
  dispatch:
    inputs: {prompt: {required: true}}
defaults: {image: agentrunner/testagent:dev, timeout: 5m}
agents:
  lead:
    orchestrate: {max-agents: 40, max-instances: 24, retries: 2, timeout: 20m}
    prompt: "${{ inputs.prompt }}"
    command: ["/testagent", "echo-prompt", "workflow", "@plans/broken.yaml", "workflow-retry", "@plans/workflow.yaml"]
`,
	})
	chdir(t, repo)
	code, out, errOut := runCLI(t, "exec", "migrate", "--prompt", "migrate every service off the old client; use a workflow", "--json")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{`"lead/plan"`, `"lead/edit[svc01]"`, `"lead/edit[svc24]"`, `"lead/check#3"`, `"lead~2"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the JSON progress lacks %s", want)
		}
	}
	runs, _ := filepath.Glob(filepath.Join(repo, ".agents", ".runs", "2*"))
	if len(runs) != 1 {
		t.Fatalf("run directories: %v", runs)
	}
	runID := filepath.Base(runs[0])
	dockertest.AssertNoLeftovers(t, cli, runID)
	b, err := os.ReadFile(filepath.Join(runs[0], "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res result.Run
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Conclusion != result.ConclusionSuccess || len(res.Applied) != 24 || len(res.Files) != 24 {
		t.Fatalf("conclusion %s, %d patches applied, %d files: %s", res.Conclusion, len(res.Applied), len(res.Files), res.Error)
	}
	if first := res.Job("lead"); first == nil || !strings.HasPrefix(first.WorkflowErrors, "workflow.yaml:1:") {
		t.Errorf("the first attempt's errors: %+v", first)
	}
	if !strings.Contains(res.Report, "The workflow **lead** wrote was refused") || !strings.Contains(res.Report, "All 24 services use the new client.") {
		t.Errorf("report:\n%s", res.Report)
	}
	if log, _ := os.ReadFile(filepath.Join(runs[0], "jobs", "lead", "log.txt")); !strings.Contains(string(log), "use a workflow") {
		t.Errorf("the orchestrator did not get the prompt: %q", log)
	}

	code, saved, errOut := runCLI(t, "save-workflow", runID, "lead", "--name", "migrate-services")
	if code != 0 {
		t.Fatalf("save-workflow: exit %d %s", code, errOut)
	}
	r, errs := config.Parse("migrate-services.yaml", []byte(saved))
	if len(errs) > 0 || r.Name != "migrate-services" || r.On.Dispatch == nil || r.Agent("edit") == nil || r.Agent("edit").Image != "agentrunner/testagent:dev" {
		t.Errorf("saved routine (%v):\n%s", errs, saved)
	}
	if code, _, errOut := runCLI(t, "save-workflow", runID, "nobody"); code == 0 || !strings.Contains(errOut, `no workflow written by "nobody"`) {
		t.Errorf("save-workflow of an agent that wrote none: exit %d %s", code, errOut)
	}
}
