package runner

import (
	"context"
	"fmt"
	"io"
	"maps"
	"time"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/preset"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/sandbox"
)

// Containers adapts a sandbox.Sandbox to the engine's Sandbox: one Prepare, Run, Destroy per task.
type Containers struct {
	Sandbox sandbox.Sandbox
	// Egress, when set, serves jobs whose network mode is allow; without it such jobs are
	// refused (an allow list is never approximated by full egress).
	Egress *Egress
}

// BeginRun implements RunScoped.
func (c *Containers) BeginRun(ctx context.Context, runID string, s RunScope) error {
	if c.Egress == nil {
		return nil
	}
	return c.Egress.BeginRun(ctx, runID, s)
}

// EndRun implements RunScoped.
func (c *Containers) EndRun(ctx context.Context, runID string) {
	if c.Egress != nil {
		c.Egress.EndRun(ctx, runID)
	}
}

// Run implements Sandbox.
func (c *Containers) Run(ctx context.Context, t *Task, logs io.Writer) (*Exit, error) {
	in := t.Instance
	spec := &sandbox.Spec{
		RunID:          t.RunID,
		JobID:          in.ID,
		Image:          in.Image,
		PullPolicy:     in.PullPolicy,
		Argv:           in.Argv,
		Env:            t.Env,
		Secrets:        t.Secrets,
		Prompt:         in.Prompt,
		WorkspaceDir:   t.WorkspaceDir,
		WorkspaceReady: t.WorkspaceReady,
		OutputDir:      t.OutputDir,
		User:           in.User,
		Resources:      sandbox.Resources{CPUs: in.Resources.CPUs, Memory: in.Resources.Memory, Pids: in.Resources.Pids, Disk: in.Resources.Disk},
		Network:        sandbox.Network{Mode: in.Network.Mode, Allow: in.Network.Allow},
		Timeout:        in.Timeout,
		Labels:         map[string]string{"agentrunner.agent": in.Agent},
	}
	if l := t.WorkspaceLayers; l != nil {
		spec.WorkspaceDir, spec.WorkspaceLayers = "", &sandbox.Layers{Lower: l.Lower, Upper: l.Upper, Work: l.Work, FSMonitor: l.FSMonitor}
	}
	allow := in.Network.Mode == sandbox.NetworkAllow && c.Egress != nil
	var err error
	if allow {
		var j joined
		j, err = c.Egress.join(ctx, t)
		if err != nil {
			return nil, err
		}
		spec.Network = j.network
		spec.Secrets = withoutServed(t.Secrets, in.KeySecrets, j.served)
		ps, _ := preset.Get(in.Preset)
		if ps != nil {
			spec.Argv = ps.WithBaseURLs(spec.Argv, j.baseURL)
		}
		for _, u := range j.unavailable {
			fmt.Fprintf(logs, "agentrunner: connector %s; the agent runs without it\n", u)
		}
		if len(j.mcp) > 0 {
			spec.Env = maps.Clone(spec.Env)
			if spec.Env == nil {
				spec.Env = map[string]string{}
			}
			if spec.Argv, err = wireConnectors(t.OutputDir, ps, spec.Argv, spec.Env, j.mcp); err != nil {
				return nil, fmt.Errorf("job %s: %w", in.ID, err)
			}
		}
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
	if res.Outcome == sandbox.DiskLimit {
		exit.Error = fmt.Sprintf("the agent wrote more than %s into %s and %s (disk limit) and was stopped; "+
			"raise resources.disk of the agent, or have it write less there (caches and build outputs included)",
			config.FormatSize(res.DiskLimit), sandbox.WorkspacePath, sandbox.OutputPath)
	}
	if allow {
		exit.Blocked = c.Egress.blocked(ctx, t.RunID, in.ID)
		for _, d := range res.Direct {
			exit.Blocked = append(exit.Blocked, d+" (direct connection without the proxy: the network has no route out)")
		}
		exit.Metered = c.Egress.spend(ctx, t.RunID, in.ID)
		budgetOutcome(exit)
	}
	return exit, nil
}

// budgetOutcome ends a job whose model calls the proxy refused for the run's budget as
// budget_exceeded: whatever its CLI made of the refusal (most exit non-zero, some exit 0 with
// the work half done), the budget is why it stopped. A timeout or a cancel stays what it was.
func budgetOutcome(exit *Exit) {
	m := exit.Metered
	if m == nil || m.Refused == 0 {
		return
	}
	switch exit.Outcome {
	case result.Success, result.Failed, result.Error:
		exit.Outcome = result.BudgetExceeded
		exit.Error = fmt.Sprintf("the run's budget of $%.2f for model calls was spent ($%.4f); %d model call(s) refused",
			m.Budget, m.RunUSD, m.Refused)
	}
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
	case sandbox.DiskLimit:
		return result.DiskLimit
	case sandbox.Cancelled:
		return result.Cancelled
	}
	return result.Error
}
