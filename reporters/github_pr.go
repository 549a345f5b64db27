package reporters

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	gh "github.com/google/go-github/v62/github"

	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/workspace"
)

// PullRequest publishes a run's consolidated changes as a pull request, the way dependency
// bots do: the runner (never the agent) commits the combined patch onto the run's commit,
// force-pushes it to agents/<routine>/<key>, and keeps one open pull request per routine and
// key, created once and updated on later runs.
//
// The push goes over HTTPS with the installation token as an Authorization header handed to
// git through its environment (workspace.PushBranch): the token never enters a container, a
// log or an error.
//
// A pull-request event's changes target its head branch; other events target the pushed branch
// or the repository's default branch. Nothing is opened for a pull request from a fork: the
// runner never pushes into forks, and the check run and comment say so.
type PullRequest struct {
	client *gh.Client
	repo   GitHubRepo
	cfg    PullRequestConfig

	number int
	url    string
}

// PullRequestConfig is where a PullRequest reporter finds and sends the changes.
type PullRequestConfig struct {
	// RepoDir is the local repository (the daemon's mirror) holding the run's commit and its
	// consolidated commit.
	RepoDir string
	// RemoteURL is where the branch is pushed: the event's clone URL.
	RemoteURL string
	// Token returns the credential for the push; nil or "" pushes without one (file:// remotes).
	Token func(ctx context.Context) (string, error)
	// Logger notes what was skipped and why; nil discards.
	Logger *slog.Logger
	// Files, when set, receives the run's PullRequestFile once the pull request is opened or
	// updated (the store: every daemon's review page and API read it there).
	Files RunFiles
}

// RunFiles keeps a run's files where every daemon sharing the store can read them
// (store.Store.SaveRunFile).
type RunFiles interface {
	SaveRunFile(ctx context.Context, runID, name string, data []byte) error
}

// PullRequestFile names the run file recording the pull request a run opened or updated,
// as a PullRequestRecord in JSON.
const PullRequestFile = "pull_request.json"

// PullRequestRecord is the content of PullRequestFile.
type PullRequestRecord struct {
	HTMLURL string `json:"html_url"`
	Number  int    `json:"number"`
	Repo    string `json:"repo"` // owner/name
}

// NewPullRequest returns a pull-request reporter for one run.
func NewPullRequest(client *gh.Client, repo GitHubRepo, cfg PullRequestConfig) *PullRequest {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &PullRequest{client: client, repo: repo, cfg: cfg}
}

// Number is the pull request's number once opened or found, 0 before or when none was needed.
func (p *PullRequest) Number() int { return p.number }

// URL is the pull request's web address once opened or found.
func (p *PullRequest) URL() string { return p.url }

// Report implements Reporter. Only RunFinished does anything.
func (p *PullRequest) Report(ctx context.Context, u Update) error {
	if u.Kind != RunFinished || u.Run == nil || u.Run.Plan == nil || u.Run.Plan.Publish.PullRequest == nil {
		return nil
	}
	res, info := u.Result, u.Run
	spec := info.Plan.Publish.PullRequest
	log := p.cfg.Logger.With("run_id", info.ID, "routine", info.Plan.Routine)
	switch {
	case isForkPR(info.Event):
		log.Info("no pull request: the event's pull request comes from a fork")
		return nil
	case len(res.Patch) == 0:
		log.Info("no pull request: the run changed nothing")
		return nil
	case res.Conclusion != result.ConclusionSuccess:
		log.Info("no pull request: the run did not succeed", "conclusion", res.Conclusion)
		return nil
	}
	branch := BranchName(info.Plan.Routine, spec.Key)
	base, err := p.baseBranch(ctx, info)
	if err != nil {
		return err
	}
	commit := res.Commit
	if commit == "" {
		msg := fmt.Sprintf("%s\n\nRun %s of routine %s at %s.\n", spec.Title, info.ID, info.Plan.Routine, res.SHA)
		if commit, err = workspace.CommitPatch(ctx, p.cfg.RepoDir, res.SHA, res.Patch, msg); err != nil {
			return fmt.Errorf("commit the changes of run %s: %w", info.ID, err)
		}
	}
	var auth workspace.Auth
	if p.cfg.Token != nil {
		if auth.Token, err = p.cfg.Token(ctx); err != nil {
			return fmt.Errorf("get a token to push %s: %w", branch, err)
		}
	}
	if err := workspace.PushBranch(ctx, p.cfg.RepoDir, p.cfg.RemoteURL, branch, commit, auth); err != nil {
		return err
	}
	body := prBody(spec.Body, info, res)
	if err := p.upsert(ctx, branch, base, spec.Title, body, spec.Draft); err != nil {
		return err
	}
	return p.record(ctx, info.ID)
}

// record saves PullRequestFile for run runID, so the morning review links the pull request.
func (p *PullRequest) record(ctx context.Context, runID string) error {
	if p.cfg.Files == nil || p.number == 0 {
		return nil
	}
	b, err := json.Marshal(PullRequestRecord{HTMLURL: p.url, Number: p.number, Repo: p.repo.FullName()})
	if err != nil {
		return err
	}
	if err := p.cfg.Files.SaveRunFile(ctx, runID, PullRequestFile, b); err != nil {
		return fmt.Errorf("record pull request #%d of %s for run %s (the review will not link it): %w", p.number, p.repo.FullName(), runID, err)
	}
	return nil
}

// baseBranch is where the changes are proposed.
func (p *PullRequest) baseBranch(ctx context.Context, info *RunInfo) (string, error) {
	ev := info.Event
	if ev != nil && ev.PullRequest != nil && ev.PullRequest.HeadRef != "" {
		return ev.PullRequest.HeadRef, nil
	}
	if ev != nil && ev.Branch != "" {
		return ev.Branch, nil
	}
	if ev != nil && ev.Repo.DefaultBranch != "" {
		return ev.Repo.DefaultBranch, nil
	}
	repo, _, err := p.client.Repositories.Get(ctx, p.repo.Owner, p.repo.Name)
	if err != nil {
		return "", fmt.Errorf("read the default branch of %s: %w", p.repo.FullName(), err)
	}
	return repo.GetDefaultBranch(), nil
}

// upsert keeps one open pull request per head branch: listed first (a POST cannot be retried
// safely), created when missing, otherwise its title and body are brought up to date.
func (p *PullRequest) upsert(ctx context.Context, branch, base, title, body string, draft bool) error {
	pr, err := p.find(ctx, branch)
	if err != nil {
		return err
	}
	if pr == nil {
		created, resp, err := p.client.PullRequests.Create(ctx, p.repo.Owner, p.repo.Name, &gh.NewPullRequest{
			Title: gh.String(title), Head: gh.String(branch), Base: gh.String(base), Body: gh.String(body), Draft: gh.Bool(draft)})
		if err == nil {
			p.number, p.url = created.GetNumber(), created.GetHTMLURL()
			return nil
		}
		// Another attempt may have opened it between the list and the create.
		if resp == nil || resp.StatusCode != http.StatusUnprocessableEntity {
			return fmt.Errorf("open a pull request from %s into %s of %s: %w", branch, base, p.repo.FullName(), err)
		}
		if pr, _ = p.find(ctx, branch); pr == nil {
			return fmt.Errorf("open a pull request from %s into %s of %s: %w", branch, base, p.repo.FullName(), err)
		}
	}
	p.number, p.url = pr.GetNumber(), pr.GetHTMLURL()
	if pr.GetTitle() == title && pr.GetBody() == body {
		return nil
	}
	if _, _, err := p.client.PullRequests.Edit(ctx, p.repo.Owner, p.repo.Name, pr.GetNumber(),
		&gh.PullRequest{Title: gh.String(title), Body: gh.String(body)}); err != nil {
		return fmt.Errorf("update pull request #%d of %s: %w", pr.GetNumber(), p.repo.FullName(), err)
	}
	return nil
}

func (p *PullRequest) find(ctx context.Context, branch string) (*gh.PullRequest, error) {
	list, _, err := p.client.PullRequests.List(ctx, p.repo.Owner, p.repo.Name, &gh.PullRequestListOptions{
		State: "open", Head: p.repo.Owner + ":" + branch, ListOptions: gh.ListOptions{PerPage: 10}})
	if err != nil {
		return nil, fmt.Errorf("look up the pull request of branch %s in %s: %w", branch, p.repo.FullName(), err)
	}
	for _, pr := range list {
		if pr.GetHead().GetRef() == branch {
			return pr, nil
		}
	}
	return nil, nil
}

// prBody is the routine's own text above the run's report, cut to GitHub's limit with the
// footer kept.
func prBody(intro string, info *RunInfo, res *result.Run) string {
	var b strings.Builder
	if s := strings.TrimSpace(intro); s != "" {
		b.WriteString(s)
		b.WriteString("\n\n")
	}
	b.WriteString(res.Report)
	footer := fmt.Sprintf("\n---\nOpened by agentrunner for routine `%s`, run `%s`", info.Plan.Routine, info.ID)
	if info.DetailsURL != "" {
		footer += fmt.Sprintf(" ([details](%s))", info.DetailsURL)
	}
	footer += ". The branch is rewritten by each run; commit on top at your own risk.\n"
	return truncate(b.String(), MaxBody-len(footer)) + footer
}
