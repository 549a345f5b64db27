package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/term"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/workspace"
)

// execRuns really runs the planned routines, one after the other, and leaves their results
// under .agents/.runs/<run-id>/.
func execRuns(ctx context.Context, s *streams, o *execOptions, root string, ev *event.Event, p *plan.Plan) error {
	secrets, err := loadSecrets(o.Secrets, o.SecretsFile)
	if err != nil {
		return usageError{err}
	}
	logger := slog.New(slog.NewTextHandler(s.Err, &slog.HandlerOptions{Level: slog.LevelWarn}))
	home, err := newExecHome()
	if err != nil {
		return err
	}
	initExe := initExecutable(logger)
	docker, err := sandbox.Connect(ctx, sandbox.Options{Logger: logger, Owner: sandbox.OwnerLabels(home.owner(), ""), InitExecutable: initExe})
	if err != nil {
		_ = home.remove(ctx)
		return fmt.Errorf("runner exec runs agents in Docker: %w", err)
	}
	// What an exec that died on this host left behind; never a live exec's or a daemon's.
	if _, err := docker.Reap(ctx, sandbox.ReapDeadExecs); err != nil {
		logger.Warn("remove the leftovers of runner exec processes that died", "err", err)
	}
	reapExecLeftovers(ctx, home, func(ctx context.Context, keep func(string) bool) error {
		_, err := docker.Reap(ctx, func(l sandbox.Leftover) bool { return !keep(l.RunID) })
		return err
	}, logger)
	// Results only: agents' workspaces live in the exec's home, outside the repository.
	runsDir := filepath.Join(root, ".agents", ".runs")
	if err := os.MkdirAll(runsDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", runsDir, err)
	}
	// Results must never be committed by accident, whatever the repository's own ignores say.
	_ = os.WriteFile(filepath.Join(runsDir, ".gitignore"), []byte("*\n"), 0o644)
	mode, note, err := chooseWorkspaceMode(ctx, docker, o.Workspace, home.workspaces(), logger)
	if err != nil {
		_ = home.remove(ctx)
		return err
	}
	// git's fsmonitor hook in overlay workspaces is the same static executable as the init.
	wsm, err := workspace.NewManager(home.workspaces(), workspace.WithLogger(logger), workspace.WithMode(mode), workspace.WithFSMonitor(initExe != ""))
	if err != nil {
		return err
	}
	defer func() {
		wsm.Close()
		if err := home.remove(context.WithoutCancel(ctx)); err != nil {
			logger.Warn("remove leftover workspaces", "dir", home.dir, "err", err)
		}
	}()

	base := ev.SHA
	if o.IncludeUncommitted {
		if base, err = wsm.Snapshot(ctx, root); err != nil {
			return err
		}
	} else if err := exec.CommandContext(ctx, "git", "-C", root, "cat-file", "-e", base+"^{commit}").Run(); err != nil {
		return fmt.Errorf("commit %s (from the event) is not in %s; fetch it first", base, root)
	}

	uid, gid := sandbox.DefaultOwner()
	interactive := o.Progress == "tty" || o.Progress == "auto" && isTerminal(s.Out)
	failed := false
	for _, r := range p.Runs {
		id := newRunID()
		if err := home.addRun(id); err != nil {
			return err
		}
		dir := filepath.Join(runsDir, id)
		term := reporters.NewTerminal(s.Out, interactive)
		term.RunDir = relPath(dir)
		if note != "" {
			term.Notes = []string{note}
		}
		var rep reporters.Reporter = term
		if o.JSON {
			rep = reporters.NewJSON(s.Out)
		}
		eng := &runner.Engine{
			Sandbox: &runner.Containers{Sandbox: docker, Egress: &runner.Egress{Client: docker.Client(), Owner: sandbox.OwnerLabels(home.owner(), ""), Logger: logger}},
			Workspaces: &runner.GitWorkspaces{
				Manager: wsm,
				Source:  workspace.Source{RepoDir: root, SHA: base},
				Owner:   &workspace.Owner{UID: uid, GID: gid},
			},
			Merger:    &runner.GitMerger{RepoDir: root, BaseSHA: base},
			Reporter:  rep,
			Logger:    logger,
			MaxAgents: o.MaxAgents,
		}
		info := &reporters.RunInfo{ID: id, Repo: ev.Repo.FullName(), Plan: r, Event: ev}
		res, err := eng.Run(ctx, info, runner.RunOptions{Dir: dir, Secrets: secrets})
		if err != nil {
			return err
		}
		if err := writeResults(dir, r, res); err != nil {
			return err
		}
		if res.Conclusion != result.ConclusionSuccess && res.Conclusion != result.ConclusionNeutral {
			failed = true
		}
		if o.Apply != "" && len(res.Patch) > 0 {
			if err := applyCombined(ctx, s, o.Apply, root, r.Routine, filepath.Join(dir, "combined.patch"), res.Patch); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if failed {
		return errSilent
	}
	return nil
}

// writeResults leaves what a person or a script wants after a run: the plan, the result, the
// combined report and the combined patch (each job's own files are already under jobs/).
func writeResults(dir string, p *plan.Run, res *result.Run) error {
	write := func(name string, b []byte) error {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		return nil
	}
	pj, _ := json.MarshalIndent(p, "", "  ")
	rj, _ := json.MarshalIndent(res, "", "  ")
	if err := write("plan.json", pj); err != nil {
		return err
	}
	if err := write("result.json", rj); err != nil {
		return err
	}
	if err := write("report.md", []byte(res.Report)); err != nil {
		return err
	}
	if len(res.Patch) > 0 {
		return write("combined.patch", res.Patch)
	}
	return nil
}

// loadSecrets reads --secret names from the environment and --secrets-file NAME=value lines.
func loadSecrets(names []string, file string) (map[string]string, error) {
	out := map[string]string{}
	if file != "" {
		var err error
		if out, err = daemon.ReadEnvFile(file); err != nil {
			return nil, fmt.Errorf("--secrets-file: %w", err)
		}
	}
	for _, n := range names {
		v, ok := os.LookupEnv(n)
		if !ok {
			return nil, fmt.Errorf("--secret %s: no such environment variable", n)
		}
		out[n] = v
	}
	return out, nil
}

func newRunID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
