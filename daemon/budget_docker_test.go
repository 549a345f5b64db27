package daemon_test

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/preset"
	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// modelAPIAlias is the fake model API's name on each run's outside network.
const modelAPIAlias = "model-api"

// withModelAPI runs the engine's containers as they are, except that each run's outside network
// gets the fake model API (once the network exists: after the proxy's start) and each agent's
// argv is the test's script (the preset would start a CLI the test image does not have).
type withModelAPI struct {
	*runner.Containers
	cli   client.APIClient
	image string
	argv  []string
	t     *testing.T
}

func (w *withModelAPI) BeginRun(ctx context.Context, runID string, scope runner.RunScope) error {
	if err := w.Containers.BeginRun(ctx, runID, scope); err != nil {
		return err
	}
	c, err := w.cli.ContainerCreate(ctx, &container.Config{Image: w.image, Labels: map[string]string{dockertest.LabelRun: runID}},
		&container.HostConfig{}, &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			"agentrunner-" + runID + "-ext": {Aliases: []string{modelAPIAlias}}}}, nil, "agentrunner-"+runID+"-model-api")
	if err == nil {
		err = w.cli.ContainerStart(ctx, c.ID, container.StartOptions{})
	}
	if err != nil {
		w.t.Errorf("start the fake model API for run %s: %v", runID, err)
	}
	return nil
}

// EndRun removes the fake API first: the run's outside network cannot go while it is on it.
func (w *withModelAPI) EndRun(ctx context.Context, runID string) {
	_ = w.cli.ContainerRemove(context.WithoutCancel(ctx), "agentrunner-"+runID+"-model-api", container.RemoveOptions{Force: true})
	w.Containers.EndRun(ctx, runID)
}

func (w *withModelAPI) Run(ctx context.Context, t *runner.Task, logs io.Writer) (*runner.Exit, error) {
	in := *t.Instance
	in.Argv = w.argv
	cp := *t
	cp.Instance = &in
	return w.Containers.Run(ctx, &cp, logs)
}

// A routine's daily budget holds across two `runner serve` daemons on one Postgres, with real
// agents behind their runs' proxies: a run on daemon A spends past the day's $0.02 (two calls
// of $0.0105 to a fake model API that answers with usage, the second while under the cap), and
// the next run, on daemon B, has its agent's first model call refused: the job ends
// budget_exceeded.
func TestADailyBudgetHoldsAcrossTwoDaemonsRunningAgents(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.TestAgentImage(t)
	api := dockertest.ModelAPIImage(t)
	exe := dockertest.BuildRunner(t, "-tags=agentrunner_testonly")
	repoDir, _ := gittest.Repo(t, map[string]string{".agents/spend.yaml": `name: spend
on: {dispatch: {}}
secrets: [ANTHROPIC_API_KEY]
budget: {day: 0.02}
defaults: {image: ` + img + `, timeout: 2m}
agents:
  spender:
    uses: claude-code
    prompt: spend
    network: {allow: ["` + modelAPIAlias + `:80"]}
`})
	repos, err := daemon.NewRepos([]daemon.Repo{{Name: "acme/app", URL: repoDir, DefaultBranch: "main"}})
	if err != nil {
		t.Fatal(err)
	}
	repos.Env = map[string]string{"ANTHROPIC_API_KEY": "sk-ant-test"}
	db := storetest.Postgres(t)
	start := func(owner string) *daemon.Daemon {
		st := db.Open(t)
		sb := &withModelAPI{cli: cli, image: api, t: t,
			argv: []string{"/testagent",
				"fetch", "$ANTHROPIC_BASE_URL/v1/usage-json",
				"fetch", "$ANTHROPIC_BASE_URL/v1/usage-json?second=1",
				"print", `{"type":"result","subtype":"success","is_error":false,"result":"done","num_turns":2}`, "--", "p"},
			Containers: &runner.Containers{Sandbox: sandbox.NewDocker(cli, sandbox.Options{}),
				Egress: &runner.Egress{Client: cli, Executable: exe, TestAllowOutside: true,
					Upstreams: map[preset.Provider]string{preset.Anthropic: "http://" + modelAPIAlias + ":80"}}}}
		return fleetMember(t, st, owner, daemon.NewSlotSandbox(sb, 2), repos, func(p *daemon.GitPipeline) {
			p.Budgets = &daemon.DailyBudgets{Store: st}
		})
	}
	st := db.Open(t)
	finished := func(d *daemon.Daemon) (conclusion string, spender *result.Job) {
		t.Helper()
		disp, err := d.Dispatch(t.Context(), "acme/app", "spend", nil)
		if err != nil {
			t.Fatal(err)
		}
		id := disp.RunID
		t.Cleanup(func() { dockertest.AssertNoLeftovers(t, cli, id) })
		deadline := time.Now().Add(3 * time.Minute)
		for {
			r, err := st.GetRun(t.Context(), id)
			if err == nil && r.Status == store.RunCompleted {
				data, err := st.RunFile(t.Context(), id, "result.json")
				var res result.Run
				if err == nil {
					err = json.Unmarshal(data, &res)
				}
				if err != nil || len(res.Jobs) != 1 {
					t.Fatalf("run %s's result: %v\n%s", id, err, data)
				}
				return r.Conclusion, res.Jobs[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("run %s did not end within 3 minutes (%+v, %v)", id, r, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	day := time.Now().UTC().Format(time.DateOnly)
	concl, job := finished(start("budget-a"))
	if concl != "success" || job.Outcome != result.Success || !containsAll(job.LogTail, "usage-json => 200", "usage-json?second=1 => 200") {
		t.Fatalf("daemon A's run: %s, job %s, want success with both calls answered\n%s", concl, job.Outcome, job.LogTail)
	}
	spent, err := st.DaySpend(t.Context(), day, "acme/app", "spend")
	if err != nil || math.Abs(spent-0.021) > 1e-9 {
		t.Fatalf("the day's spend after daemon A's run: $%v (%v), want $0.021 (two calls of $0.0105)", spent, err)
	}
	concl, job = finished(start("budget-b"))
	if concl == "success" || job.Outcome != result.BudgetExceeded || !strings.Contains(job.LogTail, "usage-json => 402") || strings.Contains(job.LogTail, "=> 200") {
		t.Fatalf("daemon B's run: %s, job %s, want its agent's first call refused and the job budget_exceeded\n%s", concl, job.Outcome, job.LogTail)
	}
	if m := job.Metered; m == nil || m.Calls != 0 || m.Refused == 0 {
		t.Errorf("daemon B's job metered %+v, want no call answered and the refusals counted", m)
	}
	if spent, err := st.DaySpend(t.Context(), day, "acme/app", "spend"); err != nil || math.Abs(spent-0.021) > 1e-9 {
		t.Errorf("the day's spend after daemon B's run: $%v (%v), want still $0.021: the refused call costs nothing", spent, err)
	}
}
