package main

import (
	"context"
	"os"
	"testing"

	"github.com/agentrunner/agentrunner/sandbox"
)

// cliEnv makes the test binary behave as the runner's own: a test runs the CLI in another
// process (as another user) through the binary it already has, instead of building one.
const cliEnv = "AGENTRUNNER_TEST_RUN_CLI"

func TestMain(m *testing.M) {
	// A static test binary is also the agents' supervisor inside their containers.
	if len(os.Args) > 1 && os.Args[1] == sandbox.InitCommand {
		os.Exit(sandbox.Supervise(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == sandbox.ProbeCommand {
		os.Exit(sandbox.ProbeMain(os.Args[2:]))
	}
	if os.Getenv(cliEnv) == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
