package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/workspace"
)

// runDaemon makes a daemon of opts and runs it until the test ends.
func runDaemon(t *testing.T, opts daemon.Options) *daemon.Daemon {
	t.Helper()
	d, err := daemon.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	return d
}

// fleetMember runs one daemon of a fleet sharing st's database: its own workspaces and runs
// directory, run files and jobs in the store, no schedules.
func fleetMember(t *testing.T, st store.Store, owner string, sb runner.Sandbox, repos *daemon.Repos, pipe func(*daemon.GitPipeline)) *daemon.Daemon {
	t.Helper()
	wsm, err := workspace.NewManager(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wsm.Close() })
	p := &daemon.GitPipeline{Workspaces: wsm, Sandbox: sb, Repos: repos, RunsDir: t.TempDir(), Files: st, Jobs: st, JobPoll: 50 * time.Millisecond}
	if pipe != nil {
		pipe(p)
	}
	return runDaemon(t, daemon.Options{Store: st, Pipeline: p, Repos: repos, Owner: owner, Poll: 20 * time.Millisecond,
		LeaseTTL: 30 * time.Second, NoSchedules: true, ShutdownGrace: 5 * time.Second})
}
