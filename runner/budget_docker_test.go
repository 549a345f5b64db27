package runner

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/preset"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner/result"
)

// withUpstream starts the fake model API on the run's outside network before the first job:
// the network exists only once the run has begun.
type withUpstream struct {
	scopedOverride
	once  sync.Once
	start func()
	stop  func()
}

// EndRun removes the fake API first: the run's outside network cannot go while it is on it.
func (w *withUpstream) EndRun(ctx context.Context, runID string) {
	w.stop()
	w.scopedOverride.EndRun(ctx, runID)
}

func (w *withUpstream) Run(ctx context.Context, t *Task, logs io.Writer) (*Exit, error) {
	w.once.Do(w.start)
	return w.scopedOverride.Run(ctx, t, logs)
}

// A run capped at a small amount, through the whole engine: the agent's model calls go
// through the run's proxy to a fake model API that answers with usage (a plain JSON answer,
// then a stream); the first call past the cap is refused, the job ends budget_exceeded, and
// the report shows the spend and the cap.
func TestARunsBudgetStopsItsAgentThroughTheEngine(t *testing.T) {
	t.Parallel()
	r := newDockerRig(t)
	cli := dockertest.Client(t)
	exe := dockertest.BuildRunner(t, "-tags=agentrunner_testonly")
	img := dockertest.ModelAPIImage(t)
	upName := "agentrunner-" + r.runID + "-upstream"
	eg := &Egress{Client: cli, Executable: exe, TestAllowOutside: true,
		Upstreams: map[preset.Provider]string{preset.Anthropic: "http://" + upName + ":80"}}
	w := &withUpstream{scopedOverride: scopedOverride{
		Containers: &Containers{Sandbox: r.sb, Egress: eg},
		argv: map[string][]string{
			// Each call costs $0.0105: the first two fit in $0.02 until the second is counted.
			"spender": {"/testagent",
				"fetch", "$ANTHROPIC_BASE_URL/v1/usage-json",
				"fetch", "$ANTHROPIC_BASE_URL/v1/usage-stream",
				"fetch", "$ANTHROPIC_BASE_URL/v1/usage-json?third=1",
				"print", `{"type":"result","subtype":"success","is_error":false,"result":"done","num_turns":3}`, "--", "p"},
		},
	}}
	var upID string
	w.stop = func() {
		if upID != "" {
			_ = cli.ContainerRemove(context.Background(), upID, container.RemoveOptions{Force: true})
		}
	}
	w.start = func() {
		c, err := cli.ContainerCreate(context.Background(), &container.Config{Image: img, Labels: map[string]string{dockertest.LabelRun: r.runID}},
			&container.HostConfig{NetworkMode: container.NetworkMode("agentrunner-" + r.runID + "-ext")}, nil, nil, upName)
		if err != nil {
			t.Errorf("create the fake model API: %v", err)
			return
		}
		upID = c.ID
		t.Cleanup(w.stop)
		if err := cli.ContainerStart(context.Background(), c.ID, container.StartOptions{}); err != nil {
			t.Errorf("start the fake model API: %v", err)
		}
	}
	r.eng.Sandbox = w
	p := routine(t, `secrets: [ANTHROPIC_API_KEY]
budget: {run: 0.02}
defaults: {image: agentrunner/testagent:dev, timeout: 2m}
agents:
  spender:
    uses: claude-code
    prompt: spend
    network: {allow: ["`+upName+`:80"]}
`, r.sha)
	res, err := r.eng.Run(t.Context(), &reporters.RunInfo{ID: r.runID, Repo: "o/r", Plan: p},
		RunOptions{Dir: t.TempDir(), Secrets: map[string]string{"ANTHROPIC_API_KEY": "sk-ant-test"}})
	if err != nil {
		t.Fatal(err)
	}
	j := jobOf(t, res, "spender")
	if j.Outcome != result.BudgetExceeded {
		t.Fatalf("spender: %s %s, want budget_exceeded\n%s", j.Outcome, j.Error, j.LogTail)
	}
	for _, want := range []string{"usage-json => 200", "usage-stream => 200", "usage-json?third=1 => 402"} {
		if !strings.Contains(j.LogTail, want) {
			t.Errorf("the agent's calls: no %q in\n%s", want, j.LogTail)
		}
	}
	if m := j.Metered; m == nil || m.Calls != 2 || m.Refused != 1 || m.Budget != 0.02 {
		t.Errorf("metered = %+v, want 2 calls, 1 refused, cap $0.02", m)
	}
	if !strings.Contains(res.Report, "Spend") || !strings.Contains(res.Report, fmt.Sprintf("%.2f", 0.02)) {
		t.Errorf("the report does not show the spend and the cap:\n%s", res.Report)
	}
}
