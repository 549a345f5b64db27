package githublogin

import (
	"context"
	"errors"
	"net/http"

	gh "github.com/google/go-github/v62/github"

	"github.com/agentrunner/agentrunner/github"
)

// InstallationLookup is a Roles.Lookup that reads a person's role through the daemon's GitHub
// client: as a GitHub App it finds the App's installation on the repository and asks with that
// installation's token; with a static token it asks with the token. A repository the App is
// not installed on gives "none": the daemon cannot vouch for anyone there.
func InstallationLookup(c *github.Client) func(ctx context.Context, owner, repo, login string) (string, error) {
	return func(ctx context.Context, owner, repo, login string) (string, error) {
		var id int64
		if c.IsApp() {
			var err error
			if id, err = c.RepoInstallation(ctx, owner, repo); err != nil {
				var er *gh.ErrorResponse
				if errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusNotFound {
					return "none", nil
				}
				return "", err
			}
		}
		return c.Installation(id).Permission(ctx, owner, repo, login)
	}
}
