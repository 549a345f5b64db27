package reporters

import (
	"context"
	"log/slog"

	gh "github.com/google/go-github/v62/github"
)

// GitHubTarget is where a run's GitHub reporters publish: the installation's REST client, the
// repository's mirror (the run's commits are there) and the remote the PR branch is pushed to,
// with the token for that push.
type GitHubTarget struct {
	REST      *gh.Client
	RepoDir   string
	RemoteURL string
	Token     func(context.Context) (string, error)
	Logger    *slog.Logger
	// Files receives the run's PullRequestFile (nil: not recorded).
	Files RunFiles
}

// ForGitHub makes the reporters a run publishes to on GitHub, as its plan says: the check run,
// the pull request with the consolidated changes, and on pull-request events the comment
// (which links the PR when there is one).
func ForGitHub(info *RunInfo, t GitHubTarget) Multi {
	ev, run := info.Event, info.Plan
	repo := GitHubRepo{Owner: ev.Repo.Owner, Name: ev.Repo.Name}
	var multi Multi
	if run.Publish.Check {
		cr := NewCheckRun(t.REST, repo)
		cr.Files = t.Files
		multi = append(multi, cr)
	}
	var pr *PullRequest
	if run.Publish.PullRequest != nil {
		pr = NewPullRequest(t.REST, repo, PullRequestConfig{RepoDir: t.RepoDir, RemoteURL: t.RemoteURL, Token: t.Token, Logger: t.Logger, Files: t.Files})
		multi = append(multi, pr)
	}
	if run.Publish.Comment && (ev.PullRequest != nil || ev.Comment != nil && ev.Comment.OnPullRequest) {
		c := NewComment(t.REST, repo)
		if pr != nil {
			c.PullRequestURL = pr.URL
		}
		multi = append(multi, c)
	}
	return multi
}
