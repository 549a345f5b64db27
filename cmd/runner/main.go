// Command runner is agentrunner's single binary: it validates and plans `.agents/*.yaml`,
// runs routines locally (`exec`), and serves GitHub webhooks, schedules and dispatches (`serve`).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/agentrunner/agentrunner/sandbox"
)

func main() {
	// Inside an agent's container, as its supervisor: nothing else of the runner runs there.
	if len(os.Args) > 1 && os.Args[1] == sandbox.InitCommand {
		os.Exit(sandbox.Supervise(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
