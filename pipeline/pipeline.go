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

// Pipeline turns events into reported runs. Its fields are set once; Handle is safe to call
// concurrently.
type Pipeline struct {
	// GitHub authenticates API calls and pushes; the event's installation is used.
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
	// Env is the runner's environment for every agent (plan.Options.Env).
	Env map[string]string
	// DetailsBaseURL, when set, links check runs to <DetailsBaseURL>/runs/<run id>.
	DetailsBaseURL string
	// MaxAgents bounds containers running at once per run (0: the engine's default).
	MaxAgents int
	// Logger receives what happened and why nothing happened; nil discards.
	Logger *slog.Logger
	// NewRunID names a run; nil derives it from the delivery id and the routine, so a retried
	// delivery updates its check run instead of adding one.
	NewRunID func(ev *event.Event, routine string) string
	// Reporter, when set, makes an extra reporter per run (a store, the logs).
	Reporter func(info *reporters.RunInfo) reporters.Reporter
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
	if ev == nil {
		return nil, errors.New("pipeline: no event")
	}
	cp := *ev
	ev = &cp
	log := p.log().With("delivery", ev.DeliveryID, "event", ev.Kind, "action", ev.Action, "repo", ev.Repo.FullName())
	switch ev.Kind {
	case event.KindPing, event.KindInstallation:
		return nil, nil
	case event.KindCheckRun:
		if ev.Routine == "" {
			log.Debug("ignored: not one of our check runs, or not a re-run")
			return nil, nil
		}
	case event.KindIssueComment:
		if ev.Routine == "" || ev.Comment == nil || !ev.Comment.OnPullRequest {
			log.Debug("ignored: not an /agents run command on a pull request")
			return nil, nil
		}
	}
	if ev.Repo.CloneURL == "" {
		return nil, fmt.Errorf("pipeline: %s event of %s has no clone URL", ev.Kind, ev.Repo.FullName())
	}
	inst := p.GitHub.Installation(ev.InstallationID)
	rest := inst.REST()
	owner, name := ev.Repo.Owner, ev.Repo.Name

	if ev.Kind == event.KindIssueComment {
		perm, err := inst.Permission(ctx, owner, name, ev.Comment.Author)
		if err != nil {
			return nil, fmt.Errorf("pipeline: check who may run %s: %w", ev.Routine, err)
		}
		if !github.CanWrite(perm) {
			log.Info("ignored: the commenter lacks write access", "user", ev.Comment.Author, "permission", perm, "routine", ev.Routine)
			return nil, nil
		}
		if err := fillPullRequest(ctx, rest, ev); err != nil {
			return nil, err
		}
	}

	token := func(ctx context.Context) (string, error) {
		t, _, err := inst.Token(ctx)
		return t, err
	}
	tok, err := token(ctx)
	if err != nil {
		return nil, fmt.Errorf("pipeline: token for %s: %w", ev.Repo.FullName(), err)
	}
	repoDir, err := p.Workspaces.Mirror(ctx, ev.Repo.CloneURL, workspace.Auth{Token: tok})
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}

	cfg, untrusted, err := p.trustedConfig(ctx, rest, repoDir, ev)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		log.Debug("ignored: no routines in the repository")
		return nil, nil
	}
	if untrusted && ev.PullRequest == nil {
		// A fork's commit re-run through its check: plan it as the fork pull request it is, so
		// it gets no secrets (unless the routine opts in) and no pull request.
		ev.PullRequest = &event.PullRequest{Fork: true, HeadSHA: ev.SHA, BaseRef: ev.Repo.DefaultBranch}
	}
	pl, planErr := plan.Build(cfg, ev, plan.Options{Env: p.Env})
	if pl == nil {
		return nil, fmt.Errorf("pipeline: plan %s event of %s: %w", ev.Kind, ev.Repo.FullName(), planErr)
	}
	for _, s := range pl.Skipped {
		log.Debug("routine not started", "routine", s.Routine, "reason", s.Reason)
	}

	var results []*result.Run
	var errs []error
	if planErr != nil {
		errs = append(errs, fmt.Errorf("pipeline: plan %s event of %s: %w", ev.Kind, ev.Repo.FullName(), planErr))
	}
	for _, run := range pl.Runs {
		res, err := p.runOne(ctx, ev, run, rest, repoDir, token, log)
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

func (p *Pipeline) runOne(ctx context.Context, ev *event.Event, run *plan.Run, rest *gh.Client, repoDir string,
	token func(context.Context) (string, error), log *slog.Logger) (*result.Run, error) {
	id := p.runID(ev, run.Routine)
	info := &reporters.RunInfo{ID: id, Repo: ev.Repo.FullName(), Plan: run, Event: ev}
	if p.DetailsBaseURL != "" {
		info.DetailsURL = strings.TrimRight(p.DetailsBaseURL, "/") + "/runs/" + id
	}
	repo := reporters.GitHubRepo{Owner: ev.Repo.Owner, Name: ev.Repo.Name}
	var multi reporters.Multi
	if run.Publish.Check {
		multi = append(multi, reporters.NewCheckRun(rest, repo))
	}
	var pr *reporters.PullRequest
	if run.Publish.PullRequest != nil {
		pr = reporters.NewPullRequest(rest, repo, reporters.PullRequestConfig{
			RepoDir: repoDir, RemoteURL: ev.Repo.CloneURL, Token: token, Logger: log})
		multi = append(multi, pr)
	}
	if run.Publish.Comment && (ev.PullRequest != nil || ev.Comment != nil && ev.Comment.OnPullRequest) {
		c := reporters.NewComment(rest, repo)
		if pr != nil {
			c.PullRequestURL = pr.URL
		}
		multi = append(multi, c)
	}
	if p.Reporter != nil {
		if r := p.Reporter(info); r != nil {
			multi = append(multi, r)
		}
	}
	dir := filepath.Join(p.RunsDir, id)
	// A retried delivery reuses the run id: start from a clean directory.
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("pipeline: clear run directory %s: %w", dir, err)
	}
	eng := &runner.Engine{
		Sandbox:    p.Sandbox,
		Workspaces: &runner.GitWorkspaces{Manager: p.Workspaces, Source: workspace.Source{RepoDir: repoDir, SHA: ev.SHA}, Owner: p.Owner},
		Merger:     &runner.GitMerger{RepoDir: repoDir, BaseSHA: ev.SHA},
		Reporter:   multi,
		Logger:     log,
		MaxAgents:  p.MaxAgents,
	}
	log.Info("run starting", "run_id", id, "routine", run.Routine, "sha", ev.SHA)
	res, err := eng.Run(ctx, info, runner.RunOptions{Dir: dir, Secrets: p.Secrets})
	if err != nil {
		return nil, fmt.Errorf("pipeline: run %s of %s: %w", run.Routine, ev.Repo.FullName(), err)
	}
	log.Info("run finished", "run_id", id, "routine", run.Routine, "conclusion", res.Conclusion)
	return res, nil
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

// trustedConfig reads the routines the event may run. A pull request from a fork gets the base
// branch's config; so does a check re-run of a commit no branch or tag of the repository holds
// (a fork's head), which then also runs without secrets (untrusted). A repository without
// routines gives a nil config.
func (p *Pipeline) trustedConfig(ctx context.Context, rest *gh.Client, repoDir string, ev *event.Event) (cfg *config.Config, untrusted bool, err error) {
	sha := ev.SHA
	switch {
	case ev.PullRequest != nil && ev.PullRequest.Fork:
		sha, err = p.baseSHA(ctx, rest, repoDir, ev, ev.PullRequest.BaseSHA, ev.PullRequest.BaseRef)
		if err != nil {
			return nil, false, err
		}
	case ev.Kind == event.KindCheckRun || ev.Kind == event.KindCheckSuite:
		held, err := onBranchOrTag(ctx, repoDir, ev.SHA)
		if err != nil {
			return nil, false, err
		}
		if !held {
			untrusted = true
			if sha, err = p.baseSHA(ctx, rest, repoDir, ev, "", ev.Repo.DefaultBranch); err != nil {
				return nil, false, err
			}
		}
	}
	if !shaRE.MatchString(sha) {
		return nil, false, fmt.Errorf("pipeline: %s event of %s has no commit to read %s from", ev.Kind, ev.Repo.FullName(), ConfigDir)
	}
	fsys, err := workspace.ReadDir(ctx, repoDir, sha, ConfigDir)
	if err != nil {
		return nil, false, fmt.Errorf("pipeline: read %s at %s of %s: %w", ConfigDir, sha, ev.Repo.FullName(), err)
	}
	cfg, err = config.LoadFS(fsys, ConfigDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, untrusted, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pipeline: config of %s at %s: %w", ev.Repo.FullName(), sha, err)
	}
	return cfg, untrusted, nil
}

// baseSHA is the commit to read trusted config from: sha when the mirror has it, else the tip of
// branch ref on GitHub.
func (p *Pipeline) baseSHA(ctx context.Context, rest *gh.Client, repoDir string, ev *event.Event, sha, ref string) (string, error) {
	if shaRE.MatchString(sha) && hasCommit(ctx, repoDir, sha) {
		return sha, nil
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
