package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/internal/safefile"
	"github.com/agentrunner/agentrunner/pipeline"
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
	// It does not change ev: the plan's Event is the event as planned (a fork's commit re-run
	// through its check becomes the fork pull request it is), which the caller runs from then on.
	Plan(ctx context.Context, ev *event.Event, routine string) (*plan.Plan, error)
	// Run runs one planned run with the reporters; runID is deterministic per delivery and
	// routine (the GitHub check run's external_id). Cancelling ctx concludes it cancelled.
	Run(ctx context.Context, ev *event.Event, run *plan.Run, runID string) (*result.Run, error)
	// Conclude reports a run that will not run (a job that died) with reason.
	Conclude(ctx context.Context, ev *event.Event, run *plan.Run, runID string, c result.Conclusion, reason string) error
}

// GitPipeline is the Pipeline of `runner serve`, an adapter over pipeline.Pipeline, which makes
// every trust decision: repositories are mirrored under the workspace manager, config is read
// from the mirror at the event's commit (at the base commit for fork pull requests and for check
// re-runs of a commit no branch or tag holds, which get no secrets), `/agents run` comments run
// only for users with write access, and the engine runs each job in its own workspace.
type GitPipeline struct {
	Workspaces *workspace.Manager
	// Sandbox runs the containers; it is shared, so MaxAgents bounds agents across all runs.
	Sandbox runner.Sandbox
	Repos   *Repos
	// GitHub checks commenters' write access and reads pull requests and base branches. Nil
	// (repositories served without GitHub) refuses every comment command.
	GitHub *github.Client
	// Reporters makes a run's reporters (nil: none); repoDir is the repository's mirror, which
	// holds the run's commits (the pull-request reporter pushes from it).
	Reporters func(info *reporters.RunInfo, repoDir string) reporters.Reporter
	Logger    *slog.Logger
	// Limits bound each job's changes and log (zero fields: the engine's defaults).
	Limits runner.Limits
	// Workflows keeps orchestrators' workflows with their runs, so a run started again after a
	// crash runs the workflow it had (StoreWorkflows; nil: not kept).
	Workflows runner.WorkflowStore
	// Budgets holds the daily model budgets across the fleet (nil: only runs' own budgets).
	Budgets *DailyBudgets
	// RunsDir receives <RunsDir>/<run id>/{jobs/<job>/log.txt, result.json, report.md}.
	RunsDir string
	// Files, when set, also keeps those files of a finished run (the store), so that any
	// daemon sharing it serves them, not only this one.
	Files RunFiles
	// DetailsURL, when set, makes a run's link for its check run, pull request and comment
	// (the run page: server.RunPage.URL).
	DetailsURL func(runID string) string
	// Auth returns the credentials to fetch repo (nil: none).
	Auth func(ctx context.Context, repo event.Repo) (workspace.Auth, error)
	// Jobs, when set, records each job's state and holds the requests to cancel one job
	// (Daemon.CancelJob), which a running run reads every JobPoll (default DefaultJobPoll).
	Jobs    RunJobs
	JobPoll time.Duration
	// Live, when set, receives each job's log as it is written, for people following it.
	Live LiveLogs

	once sync.Once
	p    *pipeline.Pipeline
	// attempts maps a run id to the context of its attempt under way in Run.
	attempts sync.Map
	// jobs maps jobKey(run id, job) to the cancel of a job running here (jobSandbox).
	jobs sync.Map
}

// LiveLogs receives the jobs' logs as they are written (package livelog implements it).
type LiveLogs interface {
	// Open starts job's live log for run runID; its writes never block nor fail, and Close
	// ends it.
	Open(runID, job string) io.WriteCloser
}

// attemptReporter holds back the end of an interrupted attempt (see interrupted): the check
// run must not conclude "cancelled" for a run that goes back to the queue and runs again.
type attemptReporter struct {
	r     reporters.Reporter
	p     *GitPipeline
	runID string
}

func (a *attemptReporter) Report(ctx context.Context, u reporters.Update) error {
	if u.Kind == reporters.RunFinished {
		if c, ok := a.p.attempts.Load(a.runID); ok && interrupted(c.(context.Context)) {
			return nil
		}
	}
	return a.r.Report(ctx, u)
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

// pipe is the pipeline.Pipeline configured from p's fields, made on first use.
func (p *GitPipeline) pipe() *pipeline.Pipeline {
	p.once.Do(func() {
		uid, gid := sandbox.DefaultOwner()
		reps := func(info *reporters.RunInfo, repoDir string) reporters.Reporter {
			if p.Reporters == nil {
				return nil
			}
			if r := p.Reporters(info, repoDir); r != nil {
				return &attemptReporter{r: r, p: p, runID: info.ID}
			}
			return nil
		}
		p.p = &pipeline.Pipeline{
			GitHub:     p.GitHub,
			Workspaces: p.Workspaces,
			Sandbox:    &jobSandbox{s: p.Sandbox, p: p},
			Owner:      &workspace.Owner{UID: uid, GID: gid},
			RunsDir:    p.RunsDir,
			RepoSecrets: func(_ context.Context, repo event.Repo) (map[string]string, error) {
				return p.Repos.Secrets(repo.FullName())
			},
			// The shared slot sandbox is the global bound; this only keeps one run from
			// queueing more goroutines than the whole daemon could run.
			MaxAgents:  1 << 16,
			Logger:     p.Logger,
			CloneURL:   p.Repos.CloneURL,
			Auth:       p.Auth,
			Reporters:  reps,
			Limits:     p.Limits,
			Workflows:  p.Workflows,
			Ledger:     p.Budgets.Ledger,
			DetailsURL: p.DetailsURL,
		}
	})
	return p.p
}

// Head implements Pipeline.
func (p *GitPipeline) Head(ctx context.Context, repo event.Repo) (string, string, error) {
	dir, err := p.pipe().Mirror(ctx, repo, "")
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
	cfg, err := p.pipe().ConfigAt(ctx, repo, sha)
	if err != nil || cfg != nil {
		return cfg, err
	}
	return &config.Config{Dir: pipeline.ConfigDir, Routines: []*config.Routine{}}, nil
}

// Plan implements Pipeline with pipeline.Plan's trust rules. It completes ev in place with what
// it resolved (a comment command's pull request and head commit, a fork commit's re-run marked
// as a fork pull request), so the Run or Conclude that follows with the same event reports on
// the pull request. An event that starts nothing gives an empty plan.
func (p *GitPipeline) Plan(ctx context.Context, ev *event.Event, routine string) (*plan.Plan, error) {
	pl, _, err := p.pipe().Plan(ctx, ev, routine)
	if pl == nil && err == nil {
		pl = &plan.Plan{Event: ev, Runs: []*plan.Run{}}
	}
	return pl, err
}

// Run implements Pipeline.
func (p *GitPipeline) Run(ctx context.Context, ev *event.Event, run *plan.Run, runID string) (*result.Run, error) {
	p.attempts.Store(runID, ctx)
	defer p.attempts.CompareAndDelete(runID, ctx)
	if p.Jobs != nil {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		go p.watchJobCancels(wctx, runID)
	}
	res, err := p.pipe().RunPlanned(ctx, ev, run, runID)
	if err != nil {
		return nil, err
	}
	if interrupted(ctx) {
		// The run goes on in another attempt: a result of this one (its agents cancelled)
		// would show the run cancelled while it is queued or running again.
		return res, nil
	}
	runDir := filepath.Join(p.RunsDir, runID)
	files := map[string][]byte{"report.md": []byte(res.Report)}
	if b, err := json.MarshalIndent(res, "", "  "); err == nil {
		files["result.json"] = b
	}
	if len(res.Patch) > 0 {
		files["combined.patch"] = res.Patch
	}
	for name, data := range files {
		_ = os.WriteFile(filepath.Join(runDir, name), data, 0o600)
	}
	if p.Files != nil {
		p.saveFiles(context.WithoutCancel(ctx), runID, runDir, res, files)
	}
	return res, nil
}

// RunFiles keeps a finished run's files where every daemon can read them.
type RunFiles interface {
	SaveRunFile(ctx context.Context, runID, name string, data []byte) error
}

// MaxSavedLog bounds a job's log as Files keeps it: the end of a longer log is kept, which is
// where an agent's failure shows. The whole log stays in the run directory.
const MaxSavedLog = 8 << 20

// saveFiles hands the run's files and its jobs' logs to p.Files. A file it cannot save is
// logged: the run has happened, and this daemon still serves the file from its run directory.
func (p *GitPipeline) saveFiles(ctx context.Context, runID, runDir string, res *result.Run, files map[string][]byte) {
	for _, j := range res.Jobs {
		rel, err := filepath.Rel(runDir, j.LogPath)
		if j.LogPath == "" || err != nil || !filepath.IsLocal(rel) {
			continue
		}
		data, err := logTail(runDir, filepath.ToSlash(rel), MaxSavedLog)
		if err != nil {
			p.log().Warn("read a job's log to keep it", "run_id", runID, "job", j.ID, "err", err)
			continue
		}
		files[filepath.ToSlash(rel)] = data
	}
	p.addJobPatches(runID, runDir, res, files)
	for name, data := range files {
		if err := p.Files.SaveRunFile(ctx, runID, name, data); err != nil {
			p.log().Warn("keep a run file in the store", "run_id", runID, "file", name, "err", err)
		}
	}
}

func (p *GitPipeline) log() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}

// logTail reads the file name beneath runDir, or its last max bytes after a line that says
// so. The runner writes the logs, but next to the directories the agents write: nothing on the
// way is followed if it is a symlink, and anything but a regular file is refused.
func logTail(runDir, name string, max int64) ([]byte, error) {
	f, err := safefile.Open(runDir, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() <= max {
		return io.ReadAll(f)
	}
	if _, err := f.Seek(st.Size()-max, io.SeekStart); err != nil {
		return nil, err
	}
	rest, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return append([]byte(fmt.Sprintf("[agentrunner: the first %d bytes of this log are only on the runner that ran the job]\n", st.Size()-max)), rest...), nil
}

// Conclude implements Pipeline.
func (p *GitPipeline) Conclude(ctx context.Context, ev *event.Event, run *plan.Run, runID string, c result.Conclusion, reason string) error {
	return p.pipe().Conclude(ctx, ev, run, runID, c, reason)
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
