// Command runner is agentrunner's single binary: it validates and plans `.agents/*.yaml`,
// runs routines locally (`exec`), and serves GitHub webhooks, schedules and dispatches (`serve`).
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/agentrunner/agentrunner/egress"
	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/sandbox/kube/carry"
)

func main() {
	// Inside an agent's container, as its supervisor: nothing else of the runner runs there.
	if len(os.Args) > 1 && os.Args[1] == sandbox.InitCommand {
		os.Exit(sandbox.Supervise(os.Args[2:]))
	}
	// Inside an overlay workspace's container, as git's fsmonitor hook: git runs it by path,
	// with no verb (see sandbox.FSMonitorPath).
	if filepath.Base(os.Args[0]) == sandbox.FSMonitorName {
		os.Exit(sandbox.FSMonitorMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	// Inside the container of the overlay probe (sandbox.ProbeOverlay).
	if len(os.Args) > 1 && os.Args[1] == sandbox.ProbeCommand {
		os.Exit(sandbox.ProbeMain(os.Args[2:]))
	}
	// Inside an agent's pod on Kubernetes: filling the workspace, then running the agent and
	// handing its workspace back (package sandbox/kube/carry).
	if len(os.Args) > 1 && os.Args[1] == carry.FetchCommand {
		os.Exit(carry.FetchMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == carry.WaitCommand {
		os.Exit(carry.WaitMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == carry.AgentCommand {
		os.Exit(carry.AgentMain(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// initExecutable is this runner's executable when it can supervise agents inside their
// containers (a static Linux build); "" otherwise, and agents' deadlines then hold only while
// the runner lives.
func initExecutable(logger *slog.Logger) string {
	exe, err := os.Executable()
	if err == nil {
		err = egress.CheckStatic(exe)
	}
	if err != nil {
		logger.Warn("agents' timeouts are enforced only while this runner runs: its executable cannot supervise them in their containers (build it with CGO_ENABLED=0)", "err", err)
		return ""
	}
	return exe
}
