package daemon

import (
	"context"

	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/plan"
)

// BeginRun passes the run's start to the wrapped sandbox when it holds run-wide resources
// (the egress proxy), so the slot bound does not hide them from the engine.
func (s *slotSandbox) BeginRun(ctx context.Context, runID string, p *plan.Run, secrets map[string]string) error {
	if rs, ok := s.s.(runner.RunScoped); ok {
		return rs.BeginRun(ctx, runID, p, secrets)
	}
	return nil
}

// EndRun passes the run's end to the wrapped sandbox.
func (s *slotSandbox) EndRun(ctx context.Context, runID string) {
	if rs, ok := s.s.(runner.RunScoped); ok {
		rs.EndRun(ctx, runID)
	}
}
