package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// Cancelling one job asked of another daemon removes that job's container (per the Docker
// API) while the run goes on: its sibling's container runs to success, and the run ends.
func TestCancelJobRemovesItsContainer(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.TestAgentImage(t)
	repoDir, _ := gittest.Repo(t, map[string]string{".agents/pair.yaml": fmt.Sprintf(`name: pair
on: {dispatch: {}}
agents:
  slow: {image: %q, command: [/testagent, hold]}
  quick: {image: %q, command: [/testagent, print, done]}
`, img, img)})
	repos, err := daemon.NewRepos([]daemon.Repo{{Name: "acme/app", URL: repoDir, DefaultBranch: "main"}})
	if err != nil {
		t.Fatal(err)
	}
	db := storetest.SQLite(t)
	start := func(owner string) *daemon.Daemon {
		sb := &runner.Containers{Sandbox: sandbox.NewDocker(cli, sandbox.Options{}), Egress: &runner.Egress{Client: cli}}
		return fleetMember(t, db.Open(t), owner, daemon.NewSlotSandbox(sb, 4), repos, nil)
	}
	st := db.Open(t)
	a := start("docker-a")
	disp, err := a.Dispatch(t.Context(), "acme/app", "pair", nil)
	if err != nil {
		t.Fatal(err)
	}
	id := disp.RunID
	// Registered after the daemons' cleanups, so it runs once they stopped: nothing of the run
	// may be left.
	t.Cleanup(func() { dockertest.AssertNoLeftovers(t, cli, id) })
	containers := func(job string) []container.Summary {
		cs, err := cli.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(
			filters.Arg("label", sandbox.LabelRun+"="+id), filters.Arg("label", sandbox.LabelJob+"="+job))})
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	waitUntil(t, "the slow agent's container to run", func() bool {
		cs := containers("slow")
		return len(cs) == 1 && cs[0].State == "running"
	})
	b := start("docker-b")
	if res, err := b.CancelJob(t.Context(), id, "slow", "not needed"); err != nil || res.Stopped {
		t.Fatalf("cancel on daemon B = %+v, %v", res, err)
	}
	waitUntil(t, "the cancelled job's container to be gone", func() bool { return len(containers("slow")) == 0 })
	waitUntil(t, "the run to end", func() bool {
		r, _ := st.GetRun(t.Context(), id)
		return r.Status == store.RunCompleted
	})
	r, _ := st.GetRun(t.Context(), id)
	res, _ := st.RunFile(t.Context(), id, "result.json")
	if r.Conclusion != "cancelled" {
		t.Errorf("run %s %q, want cancelled (one job was)", r.Conclusion, r.Error)
	}
	if got := string(res); !containsAll(got, `"id": "quick"`, `"outcome": "success"`, `"id": "slow"`, `"outcome": "cancelled"`, "not needed") {
		t.Errorf("result %s: want quick a success and slow cancelled with the reason", got)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
