package reporters

import (
	"context"
	"fmt"
	"strings"

	gh "github.com/google/go-github/v62/github"
)

// Comment keeps one comment per routine on the event's pull request, found again by a hidden
// marker and edited in place, so a pull request that is pushed to ten times has one comment
// per routine, not ten. Events that are not about a pull request get no comment.
type Comment struct {
	client *gh.Client
	repo   GitHubRepo
	// PullRequestURL, when it returns one, is linked from the comment (the PR reporter's).
	PullRequestURL func() string

	id int64
}

// NewComment returns a comment reporter for one run.
func NewComment(client *gh.Client, repo GitHubRepo) *Comment {
	return &Comment{client: client, repo: repo}
}

// CommentMarker is the hidden line that identifies a routine's comment.
func CommentMarker(routine string) string { return "<!-- agentrunner:" + routine + " -->" }

// ID is the comment's id once written, 0 before.
func (c *Comment) ID() int64 { return c.id }

// Report implements Reporter. Only RunFinished writes.
func (c *Comment) Report(ctx context.Context, u Update) error {
	if u.Kind != RunFinished || u.Run == nil || u.Run.Plan == nil {
		return nil
	}
	n := prNumber(u.Run.Event)
	if n == 0 {
		return nil
	}
	marker := CommentMarker(u.Run.Plan.Routine)
	var b strings.Builder
	b.WriteString(marker)
	b.WriteString("\n")
	b.WriteString(forkNote(u.Run))
	if c.PullRequestURL != nil {
		if url := c.PullRequestURL(); url != "" {
			fmt.Fprintf(&b, "Proposed changes: %s\n\n", url)
		}
	}
	b.WriteString(u.Result.Report)
	if u.Run.DetailsURL != "" {
		fmt.Fprintf(&b, "\n[Run details](%s)\n", u.Run.DetailsURL)
	}
	body := truncate(b.String(), MaxBody)

	id, err := c.find(ctx, n, marker)
	if err != nil {
		return err
	}
	if id == 0 {
		cm, _, err := c.client.Issues.CreateComment(ctx, c.repo.Owner, c.repo.Name, n, &gh.IssueComment{Body: gh.String(body)})
		if err != nil {
			return fmt.Errorf("comment on pull request #%d of %s: %w", n, c.repo.FullName(), err)
		}
		c.id = cm.GetID()
		return nil
	}
	if _, _, err := c.client.Issues.EditComment(ctx, c.repo.Owner, c.repo.Name, id, &gh.IssueComment{Body: gh.String(body)}); err != nil {
		return fmt.Errorf("update comment %d on pull request #%d of %s: %w", id, n, c.repo.FullName(), err)
	}
	c.id = id
	return nil
}

// find returns the id of the comment carrying marker, 0 when there is none. The marker must
// open the body: a person quoting our comment does not make theirs ours.
func (c *Comment) find(ctx context.Context, number int, marker string) (int64, error) {
	opts := &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		list, resp, err := c.client.Issues.ListComments(ctx, c.repo.Owner, c.repo.Name, number, opts)
		if err != nil {
			return 0, fmt.Errorf("list comments of pull request #%d of %s: %w", number, c.repo.FullName(), err)
		}
		for _, cm := range list {
			if strings.HasPrefix(cm.GetBody(), marker) {
				return cm.GetID(), nil
			}
		}
		if resp.NextPage == 0 {
			return 0, nil
		}
		opts.Page = resp.NextPage
	}
}
