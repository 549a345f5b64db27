package egress

import (
	"math"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/preset"
)

// The run's proxy container meters the model calls an agent makes through its key endpoint
// (a plain JSON answer and a stream) and refuses the first call past the run's budget with the
// API-shaped budget_exceeded error, which never reaches the API.
func TestTheProxyStopsModelCallsPastTheRunsBudget(t *testing.T) {
	cli := dockertest.Client(t)
	exe, upImg := testBinaries(t)
	dockertest.TestAgentImage(t)
	runID := dockertest.RunID(t)
	ctx := t.Context()
	upName := "agentrunner-" + runID + "-upstream"
	anthropic := preset.API{Provider: preset.Anthropic, Upstream: "http://" + upName + ":80", KeyHeader: "x-api-key",
		KeyEnv: []string{"ANTHROPIC_API_KEY"}, BaseURLEnv: []string{"ANTHROPIC_BASE_URL"}}
	eg := startEgress(t, cli, RunSpec{RunID: runID, Executable: exe, Keys: []Key{{API: anthropic, Value: "sk-ant-test"}},
		Budget: 0.02, TestAllowOutside: true})
	_, outside := eg.Networks()
	startUpstream(t, cli, upImg, runID, upName, outside)
	cfg, err := eg.AgentConfig(ctx, Agent{JobID: "spender", Allow: []string{upName + ":80"}, APIs: []preset.API{anthropic}})
	if err != nil {
		t.Fatal(err)
	}
	// Each call costs $0.0105 (1000 input and 500 output tokens of claude-sonnet-4-5).
	out := runAgent(t, cli, runID, "spender", []string{upName + ":80"}, cfg,
		"fetch", "$ANTHROPIC_BASE_URL/v1/usage-json",
		"fetch", "$ANTHROPIC_BASE_URL/v1/usage-stream",
		"fetch", "$ANTHROPIC_BASE_URL/v1/usage-json?third=1")
	if got := resultOf(t, out, "FETCH", "$ANTHROPIC_BASE_URL/v1/usage-json"); !strings.HasPrefix(got, "200 ") {
		t.Errorf("first call => %q", got)
	}
	if got := resultOf(t, out, "FETCH", "$ANTHROPIC_BASE_URL/v1/usage-stream"); !strings.HasPrefix(got, "200 ") {
		t.Errorf("second call => %q", got)
	}
	if got := resultOf(t, out, "FETCH", "$ANTHROPIC_BASE_URL/v1/usage-json?third=1"); !strings.HasPrefix(got, "402 ") || !strings.Contains(got, "budget_exceeded") {
		t.Errorf("the call past the budget => %q, want 402 budget_exceeded", got)
	}
	sp, run, err := eg.Spend(ctx, "spender")
	if err != nil {
		t.Fatal(err)
	}
	if sp.Calls != 2 || sp.Refused != 1 || math.Abs(sp.USD-0.021) > 1e-9 || math.Abs(run-0.021) > 1e-9 {
		t.Errorf("spend %+v, run $%v", sp, run)
	}
	if up := containerLogs(t, cli, upName); strings.Count(up, "SEEN /v1/usage") != 2 {
		t.Errorf("the API saw the refused call, or not the two others:\n%s", up)
	}

	// The runner moves the cap as daily budgets are spent: raised, a call goes through; set at
	// what the run has spent, the next is refused, naming the daily budget.
	if err := eg.SetBudget(ctx, 1, true); err != nil {
		t.Fatal(err)
	}
	out = runAgent(t, cli, runID, "spender", []string{upName + ":80"}, cfg, "fetch", "$ANTHROPIC_BASE_URL/v1/usage-json")
	if got := resultOf(t, out, "FETCH", "$ANTHROPIC_BASE_URL/v1/usage-json"); !strings.HasPrefix(got, "200 ") {
		t.Errorf("under a raised cap => %q", got)
	}
	_, run, _ = eg.Spend(ctx, "")
	if err := eg.SetBudget(ctx, run, true); err != nil {
		t.Fatal(err)
	}
	out = runAgent(t, cli, runID, "spender", []string{upName + ":80"}, cfg, "fetch", "$ANTHROPIC_BASE_URL/v1/usage-json")
	if got := resultOf(t, out, "FETCH", "$ANTHROPIC_BASE_URL/v1/usage-json"); !strings.HasPrefix(got, "402 ") || !strings.Contains(got, "daily budget") {
		t.Errorf("with the day spent => %q", got)
	}
}
