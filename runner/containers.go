package runner

import (
	"context"
	"io"
	"time"

	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/sandbox"
)

// Network gives a job a pre-created network and the environment that goes with it (the
// egress proxy of an allow-listed run). It is nil when no job needs one.
type Network interface {
	// Join returns the Docker network the job must join and the env that points it at the proxy.
	Join(jobID string) (network string, env map[string]string)
	// Blocked lists the destinations refused for the job so far.
	Blocked(jobID string) []string
}

// Containers adapts a sandbox.Sandbox to the engine's Sandbox: one Prepare, Run, Destroy per task.
type Containers struct {
	Sandbox sandbox.Sandbox
	// Network, when set, serves jobs whose network mode is allow.
	Network Network
}

// Run implements Sandbox.
func (c *Containers) Run(ctx context.Context, t *Task, logs io.Writer) (*Exit, error) {
	in := t.Instance
	spec := &sandbox.Spec{
		RunID:        t.RunID,
		JobID:        in.ID,
		Image:        in.Image,
		PullPolicy:   in.PullPolicy,
		Argv:         in.Argv,
		Env:          t.Env,
		Secrets:      t.Secrets,
		Prompt:       in.Prompt,
		WorkspaceDir: t.WorkspaceDir,
		OutputDir:    t.OutputDir,
		User:         in.User,
		Resources:    sandbox.Resources{CPUs: in.Resources.CPUs, Memory: in.Resources.Memory, Pids: in.Resources.Pids},
		Network:      sandbox.Network{Mode: in.Network.Mode, Allow: in.Network.Allow},
		Timeout:      in.Timeout,
		Labels:       map[string]string{"agentrunner.agent": in.Agent},
	}
	if in.Network.Mode == sandbox.NetworkAllow && c.Network != nil {
		spec.Network.DockerNetwork, spec.Network.ProxyEnv = c.Network.Join(in.ID)
	}
	h, err := c.Sandbox.Prepare(ctx, spec)
	if err != nil {
		return nil, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = c.Sandbox.Destroy(dctx, h)
	}()
	res, err := c.Sandbox.Run(ctx, h, logs)
	if err != nil {
		return nil, err
	}
	exit := &Exit{Outcome: outcomeOf(res.Outcome), ExitCode: res.ExitCode, Started: res.Started, Finished: res.Finished}
	if c.Network != nil && in.Network.Mode == sandbox.NetworkAllow {
		exit.Blocked = c.Network.Blocked(in.ID)
	}
	return exit, nil
}

func outcomeOf(o sandbox.Outcome) result.Outcome {
	switch o {
	case sandbox.Success:
		return result.Success
	case sandbox.Failed:
		return result.Failed
	case sandbox.TimedOut:
		return result.TimedOut
	case sandbox.OOM:
		return result.OOM
	case sandbox.Cancelled:
		return result.Cancelled
	}
	return result.Error
}
