package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// A daemon's start-up sweep removes its own leftovers and those of owners provably gone, and
// leaves alone the live agents of a `runner exec` and of another daemon on the same engine.
func TestStartUpReapSparesOtherOwnersLiveAgents(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.TestAgentImage(t)
	st := storetest.SQLite(t).Open(t)
	ctx := t.Context()
	storeID, err := st.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	liveExec := sandbox.ExecOwner()
	deadPid := exec.Command("true")
	if err := deadPid.Run(); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(liveExec, ":")
	start, _ := strconv.ParseUint(parts[len(parts)-1], 10, 64)

	// leased makes a run of this store whose job owner leases for ttl.
	leased := func(runID, owner string, ttl time.Duration) {
		t.Helper()
		if _, _, err := st.CreateRun(ctx, store.Run{ID: runID, Repo: "acme/app", Routine: "quick"}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.Enqueue(ctx, store.Job{Kind: KindRun, Key: "run/" + runID, RunID: runID}); err != nil {
			t.Fatal(err)
		}
		if js, err := st.Lease(ctx, owner, []string{KindRun}, 1, ttl); err != nil || len(js) != 1 || js[0].RunID != runID {
			t.Fatalf("lease the job of %s as %s: %+v, %v", runID, owner, js, err)
		}
	}
	cases := []struct {
		name   string
		labels map[string]string
		run    func(runID string) // what the store holds for the run, if anything
		want   bool               // removed
	}{
		{"a live runner exec's agent", sandbox.OwnerLabels(liveExec, ""), nil, false},
		{"a second daemon's agent, its lease live", sandbox.OwnerLabels(sandbox.DaemonOwner("other"), storeID),
			func(id string) { leased(id, "other", time.Hour) }, false},
		{"a daemon's agent on another store", sandbox.OwnerLabels(sandbox.DaemonOwner("elsewhere"), "another-store"), nil, false},
		{"an unlabelled object of a run this store does not know", nil, nil, false},
		{"a dead runner exec's agent", sandbox.OwnerLabels(fmt.Sprintf("exec:%s:%d:1", host, deadPid.Process.Pid), ""), nil, true},
		{"an agent of a runner exec whose pid is now another process", sandbox.OwnerLabels(fmt.Sprintf("exec:%s:%d:%d", host, os.Getpid(), start+1), ""), nil, true},
		// The previous incarnation of this daemon held the run when it died.
		{"this daemon's own agent of a run it no longer holds", sandbox.OwnerLabels(sandbox.DaemonOwner("me"), storeID),
			func(id string) { leased(id, "me", time.Hour) }, true},
		{"an unlabelled object of a run of this store nobody leases", nil,
			func(id string) { leased(id, "old", -time.Second) }, true},
	}
	mine := map[string]string{} // run id → case
	for _, tc := range cases {
		runID := dockertest.RunID(t)
		mine[runID] = tc.name
		if tc.run != nil {
			tc.run(runID)
		}
		labels := map[string]string{sandbox.LabelRun: runID}
		for k, v := range tc.labels {
			labels[k] = v
		}
		if _, err := cli.ContainerCreate(ctx, &container.Config{Image: img, Cmd: []string{"hold"}, Labels: labels},
			&container.HostConfig{NetworkMode: "none"}, nil, nil, ""); err != nil {
			t.Fatal(err)
		}
		// An overlay workspace's volume goes by the same rule as its container.
		if _, err := cli.VolumeCreate(ctx, volume.CreateOptions{Name: "agentrunner-" + runID, Labels: labels}); err != nil {
			t.Fatal(err)
		}
		// The ones kept are removed here, before dockertest checks for leftovers.
		t.Cleanup(func() {
			cs, _ := cli.ContainerList(context.Background(), container.ListOptions{All: true,
				Filters: filters.NewArgs(filters.Arg("label", sandbox.LabelRun+"="+runID))})
			for _, c := range cs {
				_ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
			}
			_ = cli.VolumeRemove(context.Background(), "agentrunner-"+runID, true)
		})
	}

	docker := sandbox.NewDocker(cli, sandbox.Options{})
	reaped := make(chan []string, 1)
	startDaemon(t, st, newFakePipeline(t, quickRoutine), "me", func(o *Options) {
		o.Reap = func(ctx context.Context, p ReapPolicy) error {
			// Only this test's objects: other tests share the engine.
			removed, err := docker.Reap(ctx, func(l sandbox.Leftover) bool { return mine[l.RunID] != "" && p.Remove(l) })
			reaped <- removed
			return err
		}
	})
	select {
	case <-reaped:
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not reap at start")
	}
	for runID, name := range mine {
		cs, err := cli.ContainerList(ctx, container.ListOptions{All: true,
			Filters: filters.NewArgs(filters.Arg("label", sandbox.LabelRun+"="+runID))})
		if err != nil {
			t.Fatal(err)
		}
		var want bool
		for _, tc := range cases {
			if tc.name == name {
				want = tc.want
			}
		}
		if removed := len(cs) == 0; removed != want {
			t.Errorf("%s: removed = %v, want %v", name, removed, want)
		}
		if _, err := cli.VolumeInspect(ctx, "agentrunner-"+runID); (err != nil) != want {
			t.Errorf("%s: volume inspect = %v, want it removed: %v", name, err, want)
		}
	}
}
