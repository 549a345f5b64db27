package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// orchestratedRoutine's lead writes (through the fake sandbox) a workflow whose one agent works
// for a few seconds: long enough to kill the daemon while it runs.
const orchestratedRoutine = `name: migrate
on:
  dispatch:
    inputs: {prompt: {required: true}}
agents:
  lead:
    image: x
    command: [x]
    prompt: "${{ inputs.prompt }}"
    orchestrate: {timeout: 10m}
    env:
      AGENTRUNNER_FAKE_WORKFLOW: |
        agents:
          slow: {command: [x], env: {AGENTRUNNER_FAKE_SLEEP: 4s}, outputs: [done]}
  after:
    needs: lead
    image: x
    command: [x]
`

// The daemon runs an orchestrated routine dispatched with a prompt; kill -9 while the generated
// workflow runs loses nothing: the workflow was kept in the store before its jobs started, and
// the run, taken up again, runs that workflow without asking the orchestrator again.
func TestKillNineDuringAnOrchestratedWorkflow(t *testing.T) {
	repoDir, _ := gittest.Repo(t, map[string]string{".agents/migrate.yaml": orchestratedRoutine})
	db := storetest.SQLite(t)
	proc := newDaemonProc(t, fmt.Sprintf(`listen: "@LISTEN@"
data-dir: "@DATA@"
database: %q
id: orchestrate-crash
sandbox: fake
reporters: none
schedules: false
lease-ttl: 2s
log-level: info
repos:
  - {name: acme/app, url: %q, default-branch: main}
`, db.DSN, repoDir))
	proc.start()
	st := db.Open(t)
	ctx := context.Background()
	tok, err := st.CreateToken(ctx, store.Token{Name: "t", Scope: store.ScopeDispatch})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+proc.addr+"/api/v1/repos/acme/app/routines/migrate/dispatch",
		strings.NewReader(`{"prompt": "migrate every service off the old client; use a workflow"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		RunID string `json:"run_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || d.RunID == "" {
		t.Fatalf("dispatch: %s", resp.Status)
	}

	waitFor(t, "the workflow's agent to run", 30*time.Second, func() bool {
		js, _ := st.RunJobs(ctx, d.RunID)
		for _, j := range js {
			if j.Job == "lead/slow" && j.State == store.RunJobRunning {
				return true
			}
		}
		return false
	})
	kept, err := st.RunFile(ctx, d.RunID, "workflows/lead.yaml")
	if err != nil || !strings.Contains(string(kept), "slow:") {
		t.Fatalf("the workflow is not in the store while its agent runs: %q %v", kept, err)
	}
	proc.signal(syscall.SIGKILL)
	proc.start()

	waitFor(t, "the run to complete after the restart", 60*time.Second, func() bool {
		r, err := st.GetRun(ctx, d.RunID)
		return err == nil && r.Status == store.RunCompleted
	})
	r, _ := st.GetRun(ctx, d.RunID)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(proc.cfg), "data", "runs", d.RunID, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res result.Run
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if r.Conclusion != "success" || res.Conclusion != result.ConclusionSuccess {
		t.Fatalf("run %s/%s: %s\n%s", r.Status, r.Conclusion, r.Error, res.Report)
	}
	lead := res.Job("lead")
	if lead == nil || !strings.Contains(lead.Report, "started again") || !strings.Contains(lead.Workflow, "slow:") {
		t.Errorf("the orchestrator's job after the restart: %+v", lead)
	}
	if j := res.Job("lead/slow"); j == nil || j.Outcome != result.Success {
		t.Errorf("lead/slow: %+v", j)
	}
	proc.signal(syscall.SIGTERM)
}
