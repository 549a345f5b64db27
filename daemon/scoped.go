package daemon

import (
	"context"

	"github.com/agentrunner/agentrunner/runner"
)

// BeginRun passes the run's start to the wrapped sandbox when it holds run-wide resources
// (the egress proxy), so the slot bound does not hide them from the engine.
func (s *slotSandbox) BeginRun(ctx context.Context, runID string, scope runner.RunScope) error {
	if rs, ok := s.s.(runner.RunScoped); ok {
		return rs.BeginRun(ctx, runID, scope)
	}
	return nil
}

// EndRun passes the run's end to the wrapped sandbox.
func (s *slotSandbox) EndRun(ctx context.Context, runID string) {
	if rs, ok := s.s.(runner.RunScoped); ok {
		rs.EndRun(ctx, runID)
	}
}

// BeginRun passes the run's start on: a job sandbox must not hide the egress proxy from the
// engine either, or allow-listed agents would find no proxy to join.
func (s *jobSandbox) BeginRun(ctx context.Context, runID string, scope runner.RunScope) error {
	if rs, ok := s.s.(runner.RunScoped); ok {
		return rs.BeginRun(ctx, runID, scope)
	}
	return nil
}

// EndRun passes the run's end on.
func (s *jobSandbox) EndRun(ctx context.Context, runID string) {
	if rs, ok := s.s.(runner.RunScoped); ok {
		rs.EndRun(ctx, runID)
	}
}
