// Package pipeline is the daemon's core: from one accepted event to reported runs. It decides
// whose config to trust (the event's commit, or the base branch for pull requests from forks),
// who may start a run by comment, plans the routines the event starts, runs each on the engine
// and reports it to GitHub as a check run, a pull request and a comment.
//
// It knows nothing about HTTP, queues or the store: the server accepts deliveries, a worker
// hands them to Handle or HandleDelivery, one at a time or several in parallel.
package pipeline

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	gh "github.com/google/go-github/v62/github"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/workspace"
)

// ConfigDir is where routines live in a repository.
const ConfigDir = ".agents"

// Pipeline turns events into reported runs. Its fields are set once, before the first call;
// every method is safe to call concurrently.
type Pipeline struct {
	// GitHub authenticates API calls and pushes; the event's installation is used. Nil serves
	// repositories without GitHub: comment commands are then refused (nobody's write access
	// can be checked), trusted config comes from the mirror's branches, and only Reporters and
	// Reporter report.
	GitHub *github.Client
	// Workspaces holds the mirrors and the jobs' workspaces.
	Workspaces *workspace.Manager
	// Sandbox runs the agents, e.g. &runner.Containers{Sandbox: docker}.
	Sandbox runner.Sandbox
	// Owner owns the workspaces (the container's user); nil leaves them to the runner's user.
	Owner *workspace.Owner
	// RunsDir receives each run's directory: <RunsDir>/<run id>/jobs/<job>/{out,log.txt}.
	RunsDir string
	// Secrets are the values the runner holds; the plan decides which run gets which.
	Secrets map[string]string
	// RepoSecrets, when set, replaces Secrets: the values the runner holds for one repository.
	RepoSecrets func(ctx context.Context, repo event.Repo) (map[string]string, error)
	// Env is the runner's environment for every agent (plan.Options.Env).
	Env map[string]string
	// DetailsURL, when set, is the link of a run's check run, pull request and comment to the
	// run's page (e.g. the daemon's run summary page).
	DetailsURL func(runID string) string
	// MaxAgents bounds containers running at once per run (0: the engine's default).
	MaxAgents int
	// Limits bound each job's changes and log (zero fields: the engine's defaults).
	Limits runner.Limits
	// Workflows keeps orchestrators' workflows with their runs (nil: not kept).
	Workflows runner.WorkflowStore
	// Ledger makes a run's ledger for daily budgets (nil, or a nil ledger: none applies).
	Ledger func(repo string, run *plan.Run) runner.SpendLedger
	// Logger receives what happened and why nothing happened; nil discards.
	Logger *slog.Logger
	// NewRunID names a run; nil derives it from the delivery id and the routine, so a retried
	// delivery updates its check run instead of adding one.
	NewRunID func(ev *event.Event, routine string) string
	// CloneURL says where to fetch a repository from (a local file:// repository, a Git
	// server); nil: the event's clone URL.
	CloneURL func(repo event.Repo) string
	// Auth gives the credentials to fetch a repository; nil: the GitHub installation's token.
	// file:// repositories are fetched without credentials.
	Auth func(ctx context.Context, repo event.Repo) (workspace.Auth, error)
	// Reporters, when set, makes a run's reporters instead of the GitHub check run, pull
	// request and comment; repoDir is the mirror holding the run's commits (the pull-request
	// reporter pushes from it).
	Reporters func(info *reporters.RunInfo, repoDir string) reporters.Reporter
	// Reporter, when set, makes an extra reporter per run (a store, the logs).
	Reporter func(info *reporters.RunInfo) reporters.Reporter

	mu      sync.Mutex
	mirrors map[string]string // clone URL → mirror dir, once fetched
	// present holds the mirror dir + commit ids known to be in a mirror: a commit stays once
	// fetched, and checking costs a git process on the way from an event to its agents, three
	// times per run (intake, the run's replanning, the run). Emptied when full.
	present map[string]bool
}

// Trust is what Plan resolved about an event: RunPlanned needs its Event, not the delivered one.
type Trust struct {
	// Event is the event as planned: a comment command's pull request filled in (head commit,
	// fork flag, event.pull_request), a check re-run of a commit no branch or tag holds marked
	// as the fork pull request it comes from.
	Event *event.Event
	// RepoDir is the repository's mirror; it holds the event's commit.
	RepoDir string
	// ConfigSHA is the commit whose .agents was planned.
	ConfigSHA string
	// Untrusted is set when the commit to run is not the repository's own (a fork): its config
	// came from the base branch, and its runs get no secrets unless a routine opts in.
	Untrusted bool
}

func (p *Pipeline) log() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// HandleDelivery parses a GitHub webhook delivery and handles it. Event kinds the runner does
// not handle are ignored without error.
func (p *Pipeline) HandleDelivery(ctx context.Context, kind, deliveryID string, body []byte) ([]*result.Run, error) {
	ev, err := event.FromGitHub(kind, deliveryID, body)
	if errors.Is(err, event.ErrUnsupported) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return p.Handle(ctx, ev)
}

// Handle runs everything ev starts and returns the runs' results, in plan order. It returns
// an error when it could not find out what to run (GitHub or git unreachable, invalid config)
// or when some routine could not be planned; runs that were planned still ran.
func (p *Pipeline) Handle(ctx context.Context, ev *event.Event) ([]*result.Run, error) {
	pl, trust, planErr := p.Plan(ctx, ev, "")
	if pl == nil {
		return nil, planErr
	}
	var results []*result.Run
	var errs []error
	if planErr != nil {
		errs = append(errs, planErr)
	}
	for _, run := range pl.Runs {
		id := p.runID(trust.Event, run.Routine)
		res, err := p.runPlanned(ctx, trust.Event, run, id, trust.RepoDir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		results = append(results, res)
		if ctx.Err() != nil {
			break
		}
	}
	return results, errors.Join(errs...)
}

// Plan decides what ev may run and plans it; routine, when set, plans only that one. It does
// every trust decision: a comment command runs only for users with write access, at its pull
// request's head; config is read at the event's commit for pushes and same-repository pull
// requests, at the base commit for pull requests from forks and for check re-runs of a commit no
// branch or tag holds, which also run without secrets (unless a routine opts in) and without a
// pull request. ev is not changed: run Trust.Event.
//
// A nil plan with a nil error means ev starts nothing (an event kind that starts no routine, a
// comment that is no command, a commenter without write access, a repository without .agents).
// Like plan.Build, it returns the routines that planned together with an error naming those
// that did not.
func (p *Pipeline) Plan(ctx context.Context, ev *event.Event, routine string) (*plan.Plan, *Trust, error) {
	if ev == nil {
		return nil, nil, errors.New("pipeline: no event")
	}
	cp := *ev
	ev = &cp
	log := p.log().With("delivery", ev.DeliveryID, "event", ev.Kind, "action", ev.Action, "repo", ev.Repo.FullName())
	switch ev.Kind {
	case event.KindPing, event.KindInstallation:
		return nil, nil, nil
	case event.KindCheckRun:
		if ev.Routine == "" {
			log.Debug("ignored: not one of our check runs, or not a re-run")
			return nil, nil, nil
		}
	case event.KindIssueComment:
		if ev.Routine == "" || ev.Comment == nil || !ev.Comment.OnPullRequest {
			log.Debug("ignored: not an /agents run command on a pull request")
			return nil, nil, nil
		}
	}
	if p.cloneURL(ev.Repo) == "" {
		return nil, nil, fmt.Errorf("pipeline: %s event of %s has no clone URL", ev.Kind, ev.Repo.FullName())
	}
	var rest *gh.Client
	if p.GitHub != nil {
		rest = p.GitHub.Installation(ev.InstallationID).REST()
	}

	if ev.Kind == event.KindIssueComment {
		if p.GitHub == nil {
			log.Warn("ignored: comment commands need GitHub to check the commenter's write access", "user", ev.Comment.Author, "routine", ev.Routine)
			return nil, nil, nil
		}
		perm, err := p.GitHub.Installation(ev.InstallationID).Permission(ctx, ev.Repo.Owner, ev.Repo.Name, ev.Comment.Author)
		if err != nil {
			return nil, nil, fmt.Errorf("pipeline: check who may run %s: %w", ev.Routine, err)
		}
		if !github.CanWrite(perm) {
			log.Info("ignored: the commenter lacks write access", "user", ev.Comment.Author, "permission", perm, "routine", ev.Routine)
			return nil, nil, nil
		}
		if err := fillPullRequest(ctx, rest, ev); err != nil {
			return nil, nil, err
		}
	}

	repoDir, err := p.mirror(ctx, ev.Repo, ev.InstallationID, ev.SHA)
	if err != nil {
		return nil, nil, err
	}
	cfg, sha, untrusted, err := p.trustedConfig(ctx, rest, repoDir, ev)
	if err != nil {
		return nil, nil, err
	}
	if cfg == nil {
		log.Debug("ignored: no routines in the repository")
		return nil, nil, nil
	}
	if untrusted && ev.PullRequest == nil {
		// A fork's commit re-run through its check: plan it as the fork pull request it is, so
		// it gets no secrets (unless the routine opts in) and no pull request.
		ev.PullRequest = &event.PullRequest{Fork: true, HeadSHA: ev.SHA, BaseRef: ev.Repo.DefaultBranch}
	}
	untrusted = untrusted || ev.PullRequest != nil && ev.PullRequest.Fork
	pl, planErr := plan.Build(cfg, ev, plan.Options{Routine: routine, Env: p.Env})
	if planErr != nil {
		planErr = fmt.Errorf("pipeline: plan %s event of %s: %w", ev.Kind, ev.Repo.FullName(), planErr)
	}
	if pl == nil {
		return nil, nil, planErr
	}
	for _, s := range pl.Skipped {
		log.Debug("routine not started", "routine", s.Routine, "reason", s.Reason)
	}
	return pl, &Trust{Event: ev, RepoDir: repoDir, ConfigSHA: sha, Untrusted: untrusted}, planErr
}

// RunPlanned runs one run of a plan with the reporters and returns its result; ev is the
// Trust.Event of the plan and runID names the run (its directory, its check run's external id).
// Cancelling ctx concludes the run cancelled.
func (p *Pipeline) RunPlanned(ctx context.Context, ev *event.Event, run *plan.Run, runID string) (*result.Run, error) {
	if ev == nil || run == nil {
		return nil, errors.New("pipeline: RunPlanned needs an event and a run")
	}
	repoDir, err := p.mirror(ctx, ev.Repo, ev.InstallationID, run.SHA)
	if err != nil {
		return nil, err
	}
	return p.runPlanned(ctx, ev, run, runID, repoDir)
}

// Conclude reports a planned run that will not run (its job died) as concluded c, with reason
// as its report.
func (p *Pipeline) Conclude(ctx context.Context, ev *event.Event, run *plan.Run, runID string, c result.Conclusion, reason string) error {
	if ev == nil || run == nil {
		return errors.New("pipeline: Conclude needs an event and a run")
	}
	repoDir, err := p.mirror(ctx, ev.Repo, ev.InstallationID, run.SHA)
	if err != nil {
		return err
	}
	info := p.info(ev, run, runID)
	rep := p.reporter(ev, info, repoDir, p.log())
	if len(rep) == 0 {
		return nil
	}
	now := time.Now()
	res := &result.Run{ID: runID, Routine: run.Routine, Repo: info.Repo, SHA: run.SHA, Conclusion: c,
		Started: now, Finished: now, Report: reason}
	return rep.Report(ctx, reporters.Update{Kind: reporters.RunFinished, Time: now, Run: info, Result: res})
}

func (p *Pipeline) info(ev *event.Event, run *plan.Run, id string) *reporters.RunInfo {
	info := &reporters.RunInfo{ID: id, Repo: ev.Repo.FullName(), Plan: run, Event: ev}
	if p.DetailsURL != nil {
		info.DetailsURL = p.DetailsURL(id)
	}
	return info
}

// reporter makes a run's reporters: Reporters or the GitHub ones, then Reporter's.
func (p *Pipeline) reporter(ev *event.Event, info *reporters.RunInfo, repoDir string, log *slog.Logger) reporters.Multi {
	var multi reporters.Multi
	switch {
	case p.Reporters != nil:
		if r := p.Reporters(info, repoDir); r != nil {
			multi = append(multi, r)
		}
	case p.GitHub != nil:
		inst := p.GitHub.Installation(ev.InstallationID)
		multi = append(multi, reporters.ForGitHub(info, reporters.GitHubTarget{
			REST: inst.REST(), RepoDir: repoDir, RemoteURL: p.cloneURL(ev.Repo), Token: p.tokenFunc(inst), Logger: log})...)
	}
	if p.Reporter != nil {
		if r := p.Reporter(info); r != nil {
			multi = append(multi, r)
		}
	}
	return multi
}

func (p *Pipeline) tokenFunc(inst *github.Installation) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		t, _, err := inst.Token(ctx)
		return t, err
	}
}

func (p *Pipeline) runPlanned(ctx context.Context, ev *event.Event, run *plan.Run, id, repoDir string) (*result.Run, error) {
	log := p.log().With("delivery", ev.DeliveryID, "event", ev.Kind, "repo", ev.Repo.FullName(), "run_id", id, "routine", run.Routine, "sha", run.SHA)
	secrets := p.Secrets
	if p.RepoSecrets != nil {
		var err error
		if secrets, err = p.RepoSecrets(ctx, ev.Repo); err != nil {
			return nil, fmt.Errorf("pipeline: secrets of %s: %w", ev.Repo.FullName(), err)
		}
	}
	info := p.info(ev, run, id)
	multi := p.reporter(ev, info, repoDir, log)
	dir := filepath.Join(p.RunsDir, id)
	// A retried delivery reuses the run id: start from a clean directory, and without the
	// workspaces an earlier attempt (a daemon killed mid-run) left behind.
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("pipeline: clear run directory %s: %w", dir, err)
	}
	if err := p.Workspaces.RemoveRun(ctx, id); err != nil {
		return nil, fmt.Errorf("pipeline: clear earlier workspaces of run %s: %w", id, err)
	}
	eng := &runner.Engine{
		Sandbox:    p.Sandbox,
		Workspaces: &runner.GitWorkspaces{Manager: p.Workspaces, Source: workspace.Source{RepoDir: repoDir, SHA: run.SHA}, Owner: p.Owner},
		Merger:     &runner.GitMerger{RepoDir: repoDir, BaseSHA: run.SHA},
		Reporter:   multi,
		Logger:     log,
		MaxAgents:  p.MaxAgents,
		Limits:     p.Limits,
		Workflows:  p.Workflows,
	}
	log.Info("run starting")
	opts := runner.RunOptions{Dir: dir, Secrets: secrets}
	if p.Ledger != nil {
		opts.Ledger = p.Ledger(ev.Repo.FullName(), run)
	}
	res, err := eng.Run(ctx, info, opts)
	if err != nil {
		return nil, fmt.Errorf("pipeline: run %s of %s: %w", run.Routine, ev.Repo.FullName(), err)
	}
	log.Info("run finished", "conclusion", res.Conclusion)
	return res, nil
}

func (p *Pipeline) cloneURL(repo event.Repo) string {
	if p.CloneURL != nil {
		return p.CloneURL(repo)
	}
	return repo.CloneURL
}

// Mirror returns the mirror of repo holding sha, fetched when it lacks sha (sha "" always
// fetches). Fetching uses Auth, else the GitHub client's default installation.
func (p *Pipeline) Mirror(ctx context.Context, repo event.Repo, sha string) (string, error) {
	return p.mirror(ctx, repo, 0, sha)
}

const presentMax = 4096

func (p *Pipeline) mirror(ctx context.Context, repo event.Repo, installationID int64, sha string) (string, error) {
	url := p.cloneURL(repo)
	if url == "" {
		return "", fmt.Errorf("pipeline: no clone URL for %s", repo.FullName())
	}
	p.mu.Lock()
	dir, ok := p.mirrors[url]
	p.mu.Unlock()
	if ok && shaRE.MatchString(sha) {
		key := dir + "@" + sha
		p.mu.Lock()
		known := p.present[key]
		p.mu.Unlock()
		if known || hasCommit(ctx, dir, sha) {
			p.mu.Lock()
			if p.present == nil || len(p.present) >= presentMax {
				p.present = map[string]bool{}
			}
			p.present[key] = true
			p.mu.Unlock()
			return dir, nil
		}
	}
	var auth workspace.Auth
	if !strings.HasPrefix(url, "file://") {
		switch {
		case p.Auth != nil:
			a, err := p.Auth(ctx, repo)
			if err != nil {
				return "", fmt.Errorf("pipeline: credentials to fetch %s: %w", repo.FullName(), err)
			}
			auth = a
		case p.GitHub != nil:
			tok, _, err := p.GitHub.Installation(installationID).Token(ctx)
			if err != nil {
				return "", fmt.Errorf("pipeline: token for %s: %w", repo.FullName(), err)
			}
			auth = workspace.Auth{Token: tok}
		}
	}
	dir, err := p.Workspaces.Mirror(ctx, url, auth)
	if err != nil {
		return "", fmt.Errorf("pipeline: %w", err)
	}
	p.mu.Lock()
	if p.mirrors == nil {
		p.mirrors = map[string]string{}
	}
	p.mirrors[url] = dir
	p.mu.Unlock()
	return dir, nil
}

// ConfigAt loads the routines of repo at sha from its mirror; nil when the commit has no
// .agents.
func (p *Pipeline) ConfigAt(ctx context.Context, repo event.Repo, sha string) (*config.Config, error) {
	if !shaRE.MatchString(sha) {
		return nil, fmt.Errorf("pipeline: %q is not a commit id to read %s of %s from", sha, ConfigDir, repo.FullName())
	}
	repoDir, err := p.mirror(ctx, repo, 0, sha)
	if err != nil {
		return nil, err
	}
	return loadConfig(ctx, repoDir, repo, sha)
}

// configCache keeps loaded configs by repository and full commit id: a commit's config never
// changes, and a run is planned twice (at intake and when its job starts), so the second plan
// costs no git. Loaded configs are never modified; the cache is emptied when full.
var configCache = struct {
	sync.Mutex
	m map[string]*config.Config
}{m: map[string]*config.Config{}}

const configCacheSize = 512

func loadConfig(ctx context.Context, repoDir string, repo event.Repo, sha string) (*config.Config, error) {
	key := repoDir + "@" + sha
	if fullSHARE.MatchString(sha) {
		configCache.Lock()
		cfg, ok := configCache.m[key]
		configCache.Unlock()
		if ok {
			return cfg, nil
		}
	}
	cfg, err := readConfig(ctx, repoDir, repo, sha)
	if err == nil && fullSHARE.MatchString(sha) {
		configCache.Lock()
		if len(configCache.m) >= configCacheSize {
			clear(configCache.m)
		}
		configCache.m[key] = cfg
		configCache.Unlock()
	}
	return cfg, err
}

var fullSHARE = regexp.MustCompile(`^[0-9a-f]{40}$`)

func readConfig(ctx context.Context, repoDir string, repo event.Repo, sha string) (*config.Config, error) {
	fsys, err := workspace.ReadDir(ctx, repoDir, sha, ConfigDir)
	if err != nil {
		return nil, fmt.Errorf("pipeline: read %s at %s of %s: %w", ConfigDir, sha, repo.FullName(), err)
	}
	if _, err := fs.Stat(fsys, ConfigDir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	cfg, err := config.LoadFS(fsys, ConfigDir)
	if err != nil {
		return nil, fmt.Errorf("pipeline: config of %s at %s: %w", repo.FullName(), sha, err)
	}
	return cfg, nil
}

func (p *Pipeline) runID(ev *event.Event, routine string) string {
	if p.NewRunID != nil {
		return p.NewRunID(ev, routine)
	}
	if ev.DeliveryID != "" {
		sum := sha256.Sum256([]byte(ev.DeliveryID + "/" + routine))
		return "r-" + hex.EncodeToString(sum[:8])
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

// fillPullRequest completes a comment event with the pull request it is on: the head commit to
// run at and whether it comes from a fork, which the comment payload does not tell. The pull
// request also becomes event.pull_request for expressions.
func fillPullRequest(ctx context.Context, rest *gh.Client, ev *event.Event) error {
	n := ev.Comment.IssueNumber
	pr, _, err := rest.PullRequests.Get(ctx, ev.Repo.Owner, ev.Repo.Name, n)
	if err != nil {
		return fmt.Errorf("pipeline: read pull request #%d of %s: %w", n, ev.Repo.FullName(), err)
	}
	out := &event.PullRequest{
		Number:   pr.GetNumber(),
		Title:    pr.GetTitle(),
		Body:     pr.GetBody(),
		Author:   pr.GetUser().GetLogin(),
		Draft:    pr.GetDraft(),
		HeadRef:  pr.GetHead().GetRef(),
		HeadSHA:  pr.GetHead().GetSHA(),
		HeadRepo: pr.GetHead().GetRepo().GetFullName(),
		BaseRef:  pr.GetBase().GetRef(),
		BaseSHA:  pr.GetBase().GetSHA(),
		Merged:   pr.GetMerged(),
	}
	for _, l := range pr.Labels {
		out.Labels = append(out.Labels, l.GetName())
	}
	if out.HeadSHA == "" {
		return fmt.Errorf("pipeline: pull request #%d of %s has no head commit", n, ev.Repo.FullName())
	}
	base := ev.Repo.FullName()
	if b := pr.GetBase().GetRepo().GetFullName(); b != "" {
		base = b
	}
	out.Fork = out.HeadRepo == "" || !strings.EqualFold(out.HeadRepo, base)
	ev.PullRequest = out
	// Expressions see the pull request as on a pull_request event: event.pull_request.title.
	if raw, err := json.Marshal(pr); err == nil {
		var m map[string]any
		if json.Unmarshal(raw, &m) == nil {
			payload := make(map[string]any, len(ev.Payload)+1)
			maps.Copy(payload, ev.Payload)
			payload["pull_request"] = m
			ev.Payload = payload
		}
	}
	ev.SHA = out.HeadSHA
	ev.Branch = out.BaseRef
	ev.Ref = fmt.Sprintf("refs/pull/%d/head", out.Number)
	return nil
}

// trustedConfig reads the routines the event may run and the commit it read them at. A pull
// request from a fork gets the base branch's config; so does a check re-run of a commit no
// branch or tag of the repository holds (a fork's head), which then also runs without secrets
// (untrusted). A repository without routines gives a nil config.
func (p *Pipeline) trustedConfig(ctx context.Context, rest *gh.Client, repoDir string, ev *event.Event) (cfg *config.Config, sha string, untrusted bool, err error) {
	sha = ev.SHA
	switch {
	case ev.PullRequest != nil && ev.PullRequest.Fork:
		sha, err = baseSHA(ctx, rest, repoDir, ev, ev.PullRequest.BaseSHA, ev.PullRequest.BaseRef)
		if err != nil {
			return nil, "", false, err
		}
	case ev.Kind == event.KindCheckRun || ev.Kind == event.KindCheckSuite:
		held, err := onBranchOrTag(ctx, repoDir, ev.SHA)
		if err == nil && !held {
			// The mirror may predate the push that put the commit on a branch.
			if repoDir, err = p.mirror(ctx, ev.Repo, ev.InstallationID, ""); err == nil {
				held, err = onBranchOrTag(ctx, repoDir, ev.SHA)
			}
		}
		if err != nil {
			return nil, "", false, err
		}
		if !held {
			untrusted = true
			if sha, err = baseSHA(ctx, rest, repoDir, ev, "", ev.Repo.DefaultBranch); err != nil {
				return nil, "", false, err
			}
		}
	}
	if !shaRE.MatchString(sha) {
		return nil, "", false, fmt.Errorf("pipeline: %s event of %s has no commit to read %s from", ev.Kind, ev.Repo.FullName(), ConfigDir)
	}
	if !hasCommit(ctx, repoDir, sha) {
		// The base branch moved on GitHub since the mirror was fetched.
		if repoDir, err = p.mirror(ctx, ev.Repo, ev.InstallationID, sha); err != nil {
			return nil, "", false, err
		}
	}
	cfg, err = loadConfig(ctx, repoDir, ev.Repo, sha)
	if err != nil {
		return nil, "", false, err
	}
	return cfg, sha, untrusted, nil
}

// baseSHA is the commit to read trusted config from: sha when the mirror has it, else the tip of
// branch ref (the default branch when ref is empty) on GitHub, or in the mirror without GitHub.
func baseSHA(ctx context.Context, rest *gh.Client, repoDir string, ev *event.Event, sha, ref string) (string, error) {
	if shaRE.MatchString(sha) && hasCommit(ctx, repoDir, sha) {
		return sha, nil
	}
	if rest == nil {
		name := "HEAD"
		if ref != "" {
			name = "refs/heads/" + ref
		}
		out, err := git(ctx, repoDir, "rev-parse", "--verify", "--quiet", "--end-of-options", name+"^{commit}")
		if err != nil {
			return "", fmt.Errorf("pipeline: find %s of %s in its mirror for its trusted config: not found", name, ev.Repo.FullName())
		}
		return strings.TrimSpace(string(out)), nil
	}
	if ref == "" {
		repo, _, err := rest.Repositories.Get(ctx, ev.Repo.Owner, ev.Repo.Name)
		if err != nil {
			return "", fmt.Errorf("pipeline: read the default branch of %s: %w", ev.Repo.FullName(), err)
		}
		ref = repo.GetDefaultBranch()
	}
	br, _, err := rest.Repositories.GetBranch(ctx, ev.Repo.Owner, ev.Repo.Name, ref, 1)
	if err != nil {
		return "", fmt.Errorf("pipeline: read branch %s of %s for its trusted config: %w", ref, ev.Repo.FullName(), err)
	}
	return br.GetCommit().GetSHA(), nil
}

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// git runs git in the mirror with no user or system configuration; args never hold event text
// other than validated object ids.
func git(ctx context.Context, repoDir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repoDir}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0", "LC_ALL=C"}
	return cmd.Output()
}

func hasCommit(ctx context.Context, repoDir, sha string) bool {
	_, err := git(ctx, repoDir, "cat-file", "-e", sha+"^{commit}")
	return err == nil
}

// onBranchOrTag reports whether a branch or tag of the mirror holds sha: only then is the
// commit the repository's own rather than a fork's.
func onBranchOrTag(ctx context.Context, repoDir, sha string) (bool, error) {
	if !shaRE.MatchString(sha) {
		return false, nil
	}
	if !hasCommit(ctx, repoDir, sha) {
		return false, nil
	}
	out, err := git(ctx, repoDir, "for-each-ref", "--count=1", "--format=%(refname)", "--contains", sha, "refs/heads/", "refs/tags/")
	if err != nil {
		return false, fmt.Errorf("pipeline: find the branches holding %s: %w", sha, err)
	}
	return len(strings.TrimSpace(string(out))) > 0, nil
}
