package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/result"
)

// FakeSleepEnv is the agent environment variable FakeSandbox waits on (a Go duration).
const FakeSleepEnv = "AGENTRUNNER_FAKE_SLEEP"

// FakeWorkflowEnv is the agent environment variable whose text FakeSandbox writes as the
// workflow, standing in for an orchestrating agent.
const FakeWorkflowEnv = "AGENTRUNNER_FAKE_WORKFLOW"

// FakeSandbox starts no container: each task succeeds at once, or after the duration in its
// AGENTRUNNER_FAKE_SLEEP environment variable, and is cancelled with its context. It exists so
// the daemon's crash and load tests (`runner serve --sandbox fake`) exercise the queue, the
// store and the reporters at hundreds of runs a minute; the Docker path is covered by the
// sandbox, runner and demo tests.
type FakeSandbox struct{}

// Run implements runner.Sandbox.
func (FakeSandbox) Run(ctx context.Context, t *runner.Task, logs io.Writer) (*runner.Exit, error) {
	start := time.Now()
	if err := t.WaitWorkspace(ctx); err != nil {
		if ctx.Err() != nil {
			return &runner.Exit{Outcome: result.Cancelled, ExitCode: -1, Started: start, Finished: time.Now()}, nil
		}
		return nil, err
	}
	fmt.Fprintf(logs, "fake sandbox: %s %v\n", t.Instance.ID, t.Instance.Argv)
	if wf := t.Env[FakeWorkflowEnv]; wf != "" {
		// An orchestrator's stand-in writes the workflow it was given.
		if err := os.WriteFile(filepath.Join(t.OutputDir, "workflow.yaml"), []byte(wf), 0o644); err != nil {
			return nil, fmt.Errorf("fake sandbox: write the workflow: %w", err)
		}
	}
	if s := t.Env[FakeSleepEnv]; s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("fake sandbox: %s=%q: %w", FakeSleepEnv, s, err)
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return &runner.Exit{Outcome: result.Cancelled, ExitCode: -1, Started: start, Finished: time.Now()}, nil
		}
	}
	return &runner.Exit{Outcome: result.Success, Started: start, Finished: time.Now()}, nil
}
