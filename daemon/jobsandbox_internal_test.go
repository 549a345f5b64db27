package daemon

import (
	"context"
	"io"
	"testing"

	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

// A job whose run is cancelled before its turn comes ends cancelled: the job sandbox never
// answers without an exit (the engine reads it).
func TestJobSandboxAnswersACancelledRunsJob(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := &jobSandbox{s: FakeSandbox{}, p: &GitPipeline{}}
	exit, err := s.Run(ctx, &runner.Task{RunID: "r", Instance: &plan.Instance{ID: "a"}}, io.Discard)
	if err != nil || exit == nil || exit.Outcome != result.Cancelled {
		t.Fatalf("exit %+v, err %v; want a cancelled exit", exit, err)
	}
}
