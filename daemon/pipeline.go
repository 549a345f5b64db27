package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/workspace"
)

// Pipeline plans and runs events for the daemon. Plan must be deterministic for one event (a
// run job plans again to get its run: plans hold compiled expressions that are not stored).
type Pipeline interface {
	// Head returns the tip of repo's default branch and the branch's name.
	Head(ctx context.Context, repo event.Repo) (sha, branch string, err error)
	// Config loads the routines of repo at sha.
	Config(ctx context.Context, repo event.Repo, sha string) (*config.Config, error)
	// Plan loads the trusted config for ev and plans it; routine, when set, plans only that one.
	Plan(ctx context.Context, ev *event.Event, routine string) (*plan.Plan, error)
	// Run runs one planned run with the reporters; runID is deterministic per delivery and
	// routine (the GitHub check run's external_id). Cancelling ctx concludes it cancelled.
	Run(ctx context.Context, ev *event.Event, run *plan.Run, runID string) (*result.Run, error)
	// Conclude reports a run that will not run (a job that died) with reason.
	Conclude(ctx context.Context, ev *event.Event, run *plan.Run, runID string, c result.Conclusion, reason string) error
}

// GitPipeline is the Pipeline of `runner serve`: repositories are mirrored under the workspace
// manager, config is read from the mirror at the event's commit (the base commit for fork pull
// requests), and the engine runs each job in its own workspace of the mirror.
type GitPipeline struct {
	Workspaces *workspace.Manager
	// Sandbox runs the containers; it is shared, so MaxAgents bounds agents across all runs.
	Sandbox runner.Sandbox
	Repos   *Repos
	// Reporters makes a run's reporters (nil: none); repoDir is the repository's mirror, which
	// holds the run's commits (the pull-request reporter pushes from it).
	Reporters func(info *reporters.RunInfo, repoDir string) reporters.Reporter
	Logger    *slog.Logger
	// RunsDir receives <RunsDir>/<run id>/{jobs/<job>/log.txt, result.json, report.md}.
	RunsDir string
	// DetailsURL, when set, is the run's link for check runs: DetailsURL + "/api/v1/runs/" + id.
	DetailsURL string
	// Auth returns the credentials to fetch repo (nil: none).
	Auth func(ctx context.Context, repo event.Repo) (workspace.Auth, error)

	mu      sync.Mutex
	mirrors map[string]string // clone URL → mirror dir, once fetched
}

// NewSlotSandbox bounds the containers s runs at once to n across every run (the engine's own
// MaxAgents is per run).
func NewSlotSandbox(s runner.Sandbox, n int) runner.Sandbox {
	if n <= 0 {
		n = 8
	}
	return &slotSandbox{s: s, sem: make(chan struct{}, n)}
}

type slotSandbox struct {
	s   runner.Sandbox
	sem chan struct{}
}

func (s *slotSandbox) Run(ctx context.Context, t *runner.Task, logs io.Writer) (*runner.Exit, error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		now := time.Now()
		return &runner.Exit{Outcome: result.Cancelled, ExitCode: -1, Started: now, Finished: now}, nil
	}
	defer func() { <-s.sem }()
	return s.s.Run(ctx, t, logs)
}

func (p *GitPipeline) log() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// mirror returns the mirror of repo holding sha (fetching when it is missing; sha "" always
// fetches).
func (p *GitPipeline) mirror(ctx context.Context, repo event.Repo, sha string) (string, error) {
	url := p.Repos.CloneURL(repo)
	p.mu.Lock()
	dir, ok := p.mirrors[url]
	p.mu.Unlock()
	if ok && sha != "" && hasCommit(ctx, dir, sha) {
		return dir, nil
	}
	var auth workspace.Auth
	if p.Auth != nil && !strings.HasPrefix(url, "file://") {
		a, err := p.Auth(ctx, repo)
		if err != nil {
			return "", fmt.Errorf("credentials to fetch %s: %w", repo.FullName(), err)
		}
		auth = a
	}
	dir, err := p.Workspaces.Mirror(ctx, url, auth)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	if p.mirrors == nil {
		p.mirrors = map[string]string{}
	}
	p.mirrors[url] = dir
	p.mu.Unlock()
	return dir, nil
}

func hasCommit(ctx context.Context, dir, sha string) bool {
	if strings.HasPrefix(sha, "-") {
		return false
	}
	return exec.CommandContext(ctx, "git", "-C", dir, "cat-file", "-e", sha+"^{commit}").Run() == nil
}

// Head implements Pipeline.
func (p *GitPipeline) Head(ctx context.Context, repo event.Repo) (string, string, error) {
	dir, err := p.mirror(ctx, repo, "")
	if err != nil {
		return "", "", err
	}
	branch := repo.DefaultBranch
	if branch == "" {
		if e, ok := p.Repos.Lookup(repo.FullName()); ok {
			branch = e.DefaultBranch
		}
	}
	ref := "HEAD"
	if branch != "" {
		ref = "refs/heads/" + branch
	}
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}").Output()
	if err != nil {
		return "", "", fmt.Errorf("default branch of %s: %s not found in its mirror", repo.FullName(), ref)
	}
	if branch == "" {
		b, err := exec.CommandContext(ctx, "git", "-C", dir, "symbolic-ref", "--short", "HEAD").Output()
		if err == nil {
			branch = strings.TrimSpace(string(b))
		}
	}
	return strings.TrimSpace(string(out)), branch, nil
}

// Config implements Pipeline. A commit without .agents has no routines.
func (p *GitPipeline) Config(ctx context.Context, repo event.Repo, sha string) (*config.Config, error) {
	dir, err := p.mirror(ctx, repo, sha)
	if err != nil {
		return nil, err
	}
	fsys, err := workspace.ReadDir(ctx, dir, sha, ".agents")
	if err != nil {
		return nil, fmt.Errorf("read .agents of %s at %s: %w", repo.FullName(), short(sha), err)
	}
	if _, err := fs.Stat(fsys, ".agents"); errors.Is(err, fs.ErrNotExist) {
		return &config.Config{Dir: ".agents", Routines: []*config.Routine{}}, nil
	}
	cfg, err := config.LoadFS(fsys, ".agents")
	if err != nil {
		return nil, fmt.Errorf("routines of %s at %s: %w", repo.FullName(), short(sha), err)
	}
	return cfg, nil
}

// configSHA is the commit whose config is trusted for ev: the base for fork pull requests.
func configSHA(ev *event.Event) string {
	if ev.PullRequest != nil && ev.PullRequest.Fork && ev.PullRequest.BaseSHA != "" {
		return ev.PullRequest.BaseSHA
	}
	return ev.SHA
}

// Plan implements Pipeline.
func (p *GitPipeline) Plan(ctx context.Context, ev *event.Event, routine string) (*plan.Plan, error) {
	cfg, err := p.Config(ctx, ev.Repo, configSHA(ev))
	if err != nil {
		return nil, err
	}
	return plan.Build(cfg, ev, plan.Options{Routine: routine})
}

func (p *GitPipeline) info(ev *event.Event, run *plan.Run, runID string) *reporters.RunInfo {
	info := &reporters.RunInfo{ID: runID, Repo: ev.Repo.FullName(), Plan: run, Event: ev}
	if p.DetailsURL != "" {
		info.DetailsURL = strings.TrimSuffix(p.DetailsURL, "/") + "/api/v1/runs/" + runID
	}
	return info
}

func (p *GitPipeline) reporter(info *reporters.RunInfo, repoDir string) reporters.Reporter {
	if p.Reporters == nil {
		return nil
	}
	return p.Reporters(info, repoDir)
}

// Run implements Pipeline.
func (p *GitPipeline) Run(ctx context.Context, ev *event.Event, run *plan.Run, runID string) (*result.Run, error) {
	dir, err := p.mirror(ctx, ev.Repo, run.SHA)
	if err != nil {
		return nil, err
	}
	secrets, err := p.Repos.Secrets(ev.Repo.FullName())
	if err != nil {
		return nil, err
	}
	uid, gid := ownerIDs(sandbox.DefaultUser)
	info := p.info(ev, run, runID)
	eng := &runner.Engine{
		Sandbox: p.Sandbox,
		Workspaces: &runner.GitWorkspaces{
			Manager: p.Workspaces,
			Source:  workspace.Source{RepoDir: dir, SHA: run.SHA},
			Owner:   &workspace.Owner{UID: uid, GID: gid},
		},
		Merger:   &runner.GitMerger{RepoDir: dir, BaseSHA: run.SHA},
		Reporter: p.reporter(info, dir),
		Logger:   p.log(),
		// The shared slot sandbox is the global bound; this only keeps one run from queueing
		// more goroutines than the whole daemon could run.
		MaxAgents: 1 << 16,
	}
	runDir := filepath.Join(p.RunsDir, runID)
	// A retried run starts clean: old job directories would mix two attempts' logs.
	_ = os.RemoveAll(filepath.Join(runDir, "jobs"))
	res, err := eng.Run(ctx, info, runner.RunOptions{Dir: runDir, Secrets: secrets})
	if err != nil {
		return nil, err
	}
	if b, err := json.MarshalIndent(res, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(runDir, "result.json"), b, 0o600)
	}
	_ = os.WriteFile(filepath.Join(runDir, "report.md"), []byte(res.Report), 0o600)
	if len(res.Patch) > 0 {
		_ = os.WriteFile(filepath.Join(runDir, "combined.patch"), res.Patch, 0o600)
	}
	return res, nil
}

// Conclude implements Pipeline.
func (p *GitPipeline) Conclude(ctx context.Context, ev *event.Event, run *plan.Run, runID string, c result.Conclusion, reason string) error {
	info := p.info(ev, run, runID)
	dir, err := p.mirror(ctx, ev.Repo, run.SHA)
	if err != nil {
		return err
	}
	rep := p.reporter(info, dir)
	if rep == nil {
		return nil
	}
	now := time.Now()
	res := &result.Run{ID: runID, Routine: run.Routine, Repo: info.Repo, SHA: run.SHA, Conclusion: c,
		Started: now, Finished: now, Report: reason}
	return rep.Report(ctx, reporters.Update{Kind: reporters.RunFinished, Time: now, Run: info, Result: res})
}

func ownerIDs(user string) (uid, gid int) {
	if _, err := fmt.Sscanf(user, "%d:%d", &uid, &gid); err != nil {
		return 10001, 10001
	}
	return uid, gid
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
