package main

import (
	"context"

	"github.com/agentrunner/agentrunner/daemon"
)

// uiControl lets the web UI steer runs through the daemon, the one place that cancels and
// re-runs (the API and the CLI go through it too).
type uiControl struct{ d *daemon.Daemon }

func (c uiControl) Cancel(ctx context.Context, runID, reason string) error {
	_, err := c.d.Cancel(ctx, runID, reason)
	return err
}

func (c uiControl) Rerun(ctx context.Context, runID string) (string, error) {
	res, err := c.d.Rerun(ctx, runID)
	if err != nil {
		return "", err
	}
	return res.RunID, nil
}

func (c uiControl) CancelJob(ctx context.Context, runID, job, reason string) error {
	_, err := c.d.CancelJob(ctx, runID, job, reason)
	return err
}

// uiDispatch lets the web UI's Run form dispatch through the daemon, which checks the inputs
// against the routine at the default branch as the API's dispatch does.
type uiDispatch struct{ d *daemon.Daemon }

func (u uiDispatch) Dispatch(ctx context.Context, repo, routine string, inputs map[string]string) (string, error) {
	res, err := u.d.Dispatch(ctx, repo, routine, inputs)
	if err != nil {
		return "", err
	}
	return res.RunID, nil
}
