package runner

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

// services is the plan stage's list: 24 services to migrate.
func services() string {
	var s []string
	for i := 1; i <= 24; i++ {
		s = append(s, fmt.Sprintf(`"svc%02d"`, i))
	}
	return "[" + strings.Join(s, ",") + "]"
}

// threeStageWorkflow is what the orchestrator writes: a plan, a 24-way dynamic fan-out that
// edits files, and three replicas voting on the result.
var threeStageWorkflow = `agents:
  plan:
    command: ["/testagent", "output-json", 'services=` + services() + `']
    outputs: [services]
  edit:
    needs: plan
    matrix: {svc: "${{ fromJSON(needs.plan.outputs.services) }}"}
    changes: keep
    command: ["/testagent", "write", "services/${{ matrix.svc }}.txt=migrated ${{ matrix.svc }}\n"]
  check:
    needs: edit
    replicas: 3
    quorum: 2
    vote: ok
    outputs: [ok]
    command: ["/testagent", "output", "ok=yes"]
`

const orchestratingRoutine = `
agents:
  migrate:
    command: ["/testagent", "sleep", "1ms"]
    orchestrate: {max-agents: 40, max-instances: 24, retries: 1}
    outputs: [note]
  after:
    needs: migrate
    command: ["/testagent", "output", "saw=${{ needs.migrate.outputs.ok }}/${{ needs.migrate.outputs.note }}/${{ needs.migrate.result }}"]
`

// orchestratorArgv makes the orchestrator ("migrate", and its later attempts) run steps.
func orchestratorArgv(steps ...string) func(in *plan.Instance) []string {
	return func(in *plan.Instance) []string {
		if in.Agent == "migrate" {
			return append([]string{"/testagent"}, steps...)
		}
		return in.Argv
	}
}

func TestOrchestratorsWorkflowRunsAsPartOfTheRun(t *testing.T) {
	t.Parallel()
	h, _, _ := gitHarness(t)
	h.sb.argv = orchestratorArgv("output", "note=mine", "workflow", threeStageWorkflow)
	res := h.run(t, t.Context(), routine(t, orchestratingRoutine, ""), nil)
	if res.Conclusion != result.ConclusionSuccess {
		t.Fatalf("conclusion %s: %s\n%s", res.Conclusion, res.Error, res.Report)
	}
	var names []string
	for _, a := range res.Agents {
		names = append(names, a.Name)
	}
	if got := strings.Join(names, " "); got != "migrate migrate/plan migrate/edit migrate/check after" {
		t.Errorf("agents in order: %s", got)
	}
	if a := agentOf(t, res, "migrate/edit"); len(a.Jobs) != 24 || a.Jobs[0] != "migrate/edit[svc01]" {
		t.Errorf("edit jobs: %v", a.Jobs)
	}
	if j := jobOf(t, res, "migrate/check#3"); j.Outputs["ok"] != "yes" {
		t.Errorf("check#3: %+v", j.Outputs)
	}
	if got := jobOf(t, res, "after").Outputs["saw"]; got != "yes/mine/success" {
		t.Errorf("after saw needs.migrate = %q, want the workflow's outputs, the orchestrator's own and success", got)
	}
	if wf := jobOf(t, res, "migrate").Workflow; !strings.Contains(wf, "fromJSON(needs.plan.outputs.services)") {
		t.Errorf("the orchestrator's job keeps its workflow: %q", wf)
	}
	// The 24 edits are the run's changes.
	if len(res.Applied) != 24 || !strings.Contains(string(res.Patch), "+migrated svc24") {
		t.Errorf("applied %d patches; patch:\n%.400s", len(res.Applied), res.Patch)
	}
	if !strings.Contains(res.Report, "migrate/edit") {
		t.Errorf("the report does not show the workflow's agents:\n%s", res.Report)
	}
}

func TestARefusedWorkflowGoesBackToTheOrchestrator(t *testing.T) {
	t.Parallel()
	h, _, _ := gitHarness(t)
	h.sb.argv = orchestratorArgv("workflow", "agents:\n  a: {command: [x]\n", "workflow-retry", threeStageWorkflow)
	res := h.run(t, t.Context(), routine(t, orchestratingRoutine, ""), nil)
	if res.Conclusion != result.ConclusionSuccess {
		t.Fatalf("conclusion %s: %s\n%s", res.Conclusion, res.Error, res.Report)
	}
	first, second := jobOf(t, res, "migrate"), jobOf(t, res, "migrate~2")
	if !strings.HasPrefix(first.WorkflowErrors, "workflow.yaml:") || second.WorkflowErrors != "" || second.Workflow == "" {
		t.Errorf("attempts: first errors %q; second errors %q, workflow %d bytes", first.WorkflowErrors, second.WorkflowErrors, len(second.Workflow))
	}
	if a := agentOf(t, res, "migrate"); !slices.Equal(a.Jobs, []string{"migrate", "migrate~2"}) || a.Result != "success" {
		t.Errorf("orchestrator agent: %+v", a)
	}
	if !strings.Contains(res.Report, first.WorkflowErrors) {
		t.Errorf("the report does not show the first attempt's errors:\n%s", res.Report)
	}
	if len(res.Applied) != 24 {
		t.Errorf("applied %d", len(res.Applied))
	}
}

func TestAWorkflowOutsideTheEnvelopeRunsNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	wide := `agents:
  a: {command: [x], image: "other:1"}
  b: {command: [x], network: open}
  c: {command: [x], replicas: 30, vote: v, outputs: [v]}
  d: {command: [x], replicas: 20, vote: v, outputs: [v]}
  e: {command: [x], replicas: 20, vote: v, outputs: [v]}
`
	h.sb.argv = orchestratorArgv("workflow", wide)
	res := h.run(t, t.Context(), routine(t, orchestratingRoutine, ""), nil)
	if res.Conclusion == result.ConclusionSuccess {
		t.Fatal("a workflow outside its envelope ran")
	}
	if got := h.sb.started(); !slices.Equal(got, []string{"migrate", "migrate~2"}) {
		t.Errorf("started %v, want only the orchestrator's two attempts", got)
	}
	j := jobOf(t, res, "migrate~2")
	for _, want := range []string{
		`image "other:1" is not one the envelope allows`,
		"network open is wider than the orchestrator's",
		"agent c fans out to 30 instances",
		"the envelope allows 40 in all",
	} {
		if !strings.Contains(j.Error, want) {
			t.Errorf("the refusal lacks %q:\n%s", want, j.Error)
		}
	}
	if after := agentOf(t, res, "after"); after.Result != "skipped" {
		t.Errorf("after: %s, want skipped", after.Result)
	}
}

func TestAWorkflowsDynamicFanOutCountsAgainstItsEnvelope(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.sb.argv = orchestratorArgv("workflow", `agents:
  plan: {command: ["/testagent", "output-json", 'list=[1,2,3,4,5,6,7,8,9,10]'], outputs: [list]}
  fan:
    needs: plan
    matrix: {i: "${{ fromJSON(needs.plan.outputs.list) }}"}
    command: ["/testagent", "print", "${{ matrix.i }}"]
`)
	p := routine(t, strings.Replace(orchestratingRoutine, "max-agents: 40", "max-agents: 8", 1), "")
	res := h.run(t, t.Context(), p, nil)
	if a := agentOf(t, res, "migrate/fan"); a.Result != "failure" || !strings.Contains(jobOf(t, res, "migrate/fan").Error, "more than the 8 instances") {
		t.Errorf("fan: %+v", a)
	}
	if n := len(h.sb.started()); n != 2 {
		t.Errorf("%d jobs started, want the orchestrator and plan", n)
	}
	if a := agentOf(t, res, "migrate"); a.Result != "failure" {
		t.Errorf("orchestrator: %s, want failure", a.Result)
	}
}

func TestAWorkflowPastItsTimeBudgetFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.sb.argv = orchestratorArgv("workflow", "agents:\n  slow: {command: [\"/testagent\", \"sleep\", \"30s\"]}\n")
	p := routine(t, strings.Replace(orchestratingRoutine, "retries: 1}", "retries: 1, timeout: 300ms}", 1), "")
	res := h.run(t, t.Context(), p, nil)
	if a := agentOf(t, res, "migrate"); a.Result != "failure" {
		t.Errorf("orchestrator: %s", a.Result)
	}
	if j := jobOf(t, res, "migrate"); !strings.Contains(j.Error, "ran past its 300ms budget") {
		t.Errorf("orchestrator error %q", j.Error)
	}
	if j := jobOf(t, res, "migrate/slow"); j.Outcome != result.Cancelled {
		t.Errorf("slow: %s", j.Outcome)
	}
}

// memWorkflows is a WorkflowStore in memory.
type memWorkflows struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (w *memWorkflows) SaveWorkflow(_ context.Context, runID, agent string, data []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[string][]byte{}
	}
	w.m[runID+"/"+agent] = slices.Clone(data)
	return nil
}

func (w *memWorkflows) Workflow(_ context.Context, runID, agent string) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if b, ok := w.m[runID+"/"+agent]; ok {
		return b, nil
	}
	return nil, fs.ErrNotExist
}

// A run started again (after a crash) runs the workflow its first attempt kept, without asking
// the orchestrator again.
func TestARunStartedAgainRunsTheWorkflowItKept(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	kept := &memWorkflows{}
	h.eng.Workflows = kept
	h.sb.argv = orchestratorArgv("workflow", "agents:\n  one: {command: [\"/testagent\", \"output\", \"ok=first\"]}\n")
	p := routine(t, orchestratingRoutine, "")
	run := func() *result.Run {
		res, err := h.eng.Run(t.Context(), &reporters.RunInfo{ID: "same-run", Repo: "o/r", Plan: p}, RunOptions{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := run(); res.Conclusion != result.ConclusionSuccess || len(kept.m) != 1 {
		t.Fatalf("first attempt: %s, %d kept", res.Conclusion, len(kept.m))
	}
	// The orchestrator would now write something else, and fail.
	h.sb.argv = orchestratorArgv("workflow", "agents:\n  two: {command: [x]}\n", "exit", "1")
	before := len(h.sb.started())
	res := run()
	if res.Conclusion != result.ConclusionSuccess {
		t.Fatalf("second attempt: %s\n%s", res.Conclusion, res.Report)
	}
	if got := h.sb.started()[before:]; !slices.Equal(got, []string{"migrate/one", "after"}) {
		t.Errorf("the second attempt started %v, want the kept workflow's agent and after, not the orchestrator", got)
	}
	if got := jobOf(t, res, "after").Outputs["saw"]; got != "first//success" {
		t.Errorf("after saw %q", got)
	}
}
