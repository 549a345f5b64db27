package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrUnsupported is returned (wrapped) by FromGitHub for an event kind the runner does not
// handle; the server acknowledges such deliveries and ignores them.
var ErrUnsupported = errors.New("unsupported GitHub event")

// MaxPushFiles is the most changed files a push may list and still be trusted as complete;
// beyond it (or with GitHub's 2048-commit cap reached) ChangedFiles is left unknown.
const MaxPushFiles = 2048

// maxPushCommits is GitHub's cap on the commits array of a push payload: a payload that
// reaches it may have been truncated.
const maxPushCommits = 2048

const zeroSHA = "0000000000000000000000000000000000000000"

// The gh* types are the parts of GitHub's webhook payloads the runner reads. Pointers and
// json.RawMessage tell a missing field apart from a zero one.
type ghUser struct {
	Login string `json:"login"`
	Name  string `json:"name"`
}

type ghRepo struct {
	Name          string  `json:"name"`
	FullName      string  `json:"full_name"`
	Owner         *ghUser `json:"owner"`
	CloneURL      string  `json:"clone_url"`
	DefaultBranch string  `json:"default_branch"`
	Private       bool    `json:"private"`
}

// ghPayload is every top-level field the runner reads, of every kind, so the payload is
// decoded into structs once.
type ghPayload struct {
	ghPush
	ghPullRequest
	ghIssueComment
	ghCheck
	Action       *string `json:"action"`
	Repository   *ghRepo `json:"repository"`
	Sender       *ghUser `json:"sender"`
	Installation *struct {
		ID      int64   `json:"id"`
		Account *ghUser `json:"account"`
	} `json:"installation"`
}

type ghPush struct {
	Ref     *string `json:"ref"`
	Before  string  `json:"before"` // push and pull_request synchronize
	After   *string `json:"after"`
	Created bool    `json:"created"`
	Deleted bool    `json:"deleted"`
	Commits *[]struct {
		Added    []string `json:"added"`
		Removed  []string `json:"removed"`
		Modified []string `json:"modified"`
	} `json:"commits"`
}

type ghBranch struct {
	Ref  string  `json:"ref"`
	SHA  string  `json:"sha"`
	Repo *ghRepo `json:"repo"`
}

type ghPullRequest struct {
	PullRequest *struct {
		Number int     `json:"number"`
		Title  string  `json:"title"`
		Body   *string `json:"body"`
		User   *ghUser `json:"user"`
		Draft  bool    `json:"draft"`
		Merged bool    `json:"merged"`
		Labels []struct {
			Name string `json:"name"`
		} `json:"labels"`
		Head *ghBranch `json:"head"`
		Base *ghBranch `json:"base"`
	} `json:"pull_request"`
}

type ghIssueComment struct {
	Issue *struct {
		Number      int             `json:"number"`
		PullRequest json.RawMessage `json:"pull_request"`
	} `json:"issue"`
	Comment *struct {
		ID                int64   `json:"id"`
		Body              string  `json:"body"`
		User              *ghUser `json:"user"`
		AuthorAssociation string  `json:"author_association"`
	} `json:"comment"`
}

type ghCheckSuite struct {
	HeadSHA    string  `json:"head_sha"`
	HeadBranch *string `json:"head_branch"`
	Before     string  `json:"before"`
}

type ghCheck struct {
	CheckRun *struct {
		Name       string        `json:"name"`
		ExternalID string        `json:"external_id"`
		HeadSHA    string        `json:"head_sha"`
		HeadBranch *string       `json:"head_branch"`
		CheckSuite *ghCheckSuite `json:"check_suite"`
	} `json:"check_run"`
	CheckSuite *ghCheckSuite `json:"check_suite"`
}

// FromGitHub normalizes a GitHub webhook delivery. kind is the X-GitHub-Event header and
// deliveryID the X-GitHub-Delivery header. Malformed JSON or a missing required field is an
// error naming the event and the field; an event kind the runner does not handle wraps
// ErrUnsupported.
//
// Pull request events set SHA to the head commit and Branch to the base branch (what branch
// filters match), and Ref to refs/pull/<n>/head, the ref that fetches the head even from a
// fork. Issue comments carry no commit: SHA is empty and PullRequest nil, and the caller must
// look the pull request up (head SHA, fork or not) before planning.
func FromGitHub(kind, deliveryID string, payload []byte) (*Event, error) {
	ev, err := fromGitHub(kind, deliveryID, payload)
	if err != nil {
		if deliveryID != "" {
			return nil, fmt.Errorf("github %s delivery %s: %w", kind, deliveryID, err)
		}
		return nil, fmt.Errorf("github %s event: %w", kind, err)
	}
	return ev, nil
}

func fromGitHub(kind, deliveryID string, payload []byte) (*Event, error) {
	switch kind {
	case KindPush, KindPullRequest, KindIssueComment, KindCheckRun, KindCheckSuite, KindInstallation, KindPing:
	default:
		return nil, ErrUnsupported
	}
	raw, err := decodeObject(payload)
	if err != nil {
		return nil, err
	}
	var common ghPayload
	if err := json.Unmarshal(payload, &common); err != nil {
		return nil, fmt.Errorf("decode %s payload: %w", kind, err)
	}
	ev := &Event{Kind: kind, DeliveryID: deliveryID, Payload: raw}
	if common.Action != nil {
		ev.Action = *common.Action
	}
	if common.Sender != nil {
		ev.Sender = common.Sender.Login
	}
	if common.Installation != nil {
		ev.InstallationID = common.Installation.ID
	}
	switch kind {
	case KindPing:
		if common.Repository != nil {
			ev.Repo, _ = repoOf(common.Repository) // an organization hook pings without one
		}
		return ev, nil
	case KindInstallation:
		if common.Installation == nil || common.Installation.ID == 0 {
			return nil, missing("installation.id")
		}
		if common.Installation.Account != nil {
			ev.Repo.Owner = common.Installation.Account.Login
		}
		return ev, nil
	}
	if common.Repository == nil {
		return nil, missing("repository")
	}
	if ev.Repo, err = repoOf(common.Repository); err != nil {
		return nil, err
	}
	if kind != KindPush && common.Action == nil {
		return nil, missing("action")
	}
	switch kind {
	case KindPush:
		err = fillPush(ev, &common.ghPush)
	case KindPullRequest:
		err = fillPullRequest(ev, &common.ghPullRequest, common.Before)
	case KindIssueComment:
		err = fillIssueComment(ev, &common.ghIssueComment)
	default:
		err = fillCheck(ev, &common.ghCheck)
	}
	if err != nil {
		return nil, err
	}
	return ev, nil
}

// decodeObject decodes the payload for the `event` expression context. Numbers stay float64,
// as expressions expect; GitHub's ids fit a float64 exactly.
func decodeObject(payload []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(payload)) == 0 {
		return nil, errors.New("empty payload")
	}
	var raw map[string]any
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, fmt.Errorf("decode payload: %w", err)
	}
	if raw == nil {
		return nil, errors.New("payload is not a JSON object")
	}
	return raw, nil
}

func missing(field string) error { return fmt.Errorf("payload has no %q", field) }

func repoOf(r *ghRepo) (Repo, error) {
	repo := Repo{Name: r.Name, CloneURL: r.CloneURL, DefaultBranch: r.DefaultBranch, Private: r.Private}
	if r.Owner != nil {
		// Push payloads of old give the owner's login as `name`; every other payload as `login`.
		repo.Owner = r.Owner.Login
		if repo.Owner == "" {
			repo.Owner = r.Owner.Name
		}
	}
	if owner, name, ok := strings.Cut(r.FullName, "/"); ok {
		if repo.Owner == "" {
			repo.Owner = owner
		}
		if repo.Name == "" {
			repo.Name = name
		}
	}
	if repo.Owner == "" || repo.Name == "" {
		return Repo{}, missing("repository.full_name")
	}
	return repo, nil
}

func fillPush(ev *Event, p *ghPush) error {
	if p.Ref == nil || *p.Ref == "" {
		return missing("ref")
	}
	if p.After == nil || *p.After == "" {
		return missing("after")
	}
	ev.Ref, ev.SHA, ev.Before = *p.Ref, *p.After, p.Before
	ev.Created, ev.Deleted = p.Created, p.Deleted
	switch {
	case strings.HasPrefix(ev.Ref, "refs/heads/"):
		ev.Branch = strings.TrimPrefix(ev.Ref, "refs/heads/")
	case strings.HasPrefix(ev.Ref, "refs/tags/"):
		ev.Tag = strings.TrimPrefix(ev.Ref, "refs/tags/")
	}
	// An empty commits list does not mean nothing changed: a new branch at an existing commit
	// or a force push back in history lists no commits. Only a non-empty list is a file list.
	if p.Commits == nil || len(*p.Commits) == 0 || len(*p.Commits) >= maxPushCommits {
		return nil
	}
	seen := map[string]bool{}
	for _, c := range *p.Commits {
		for _, list := range [][]string{c.Added, c.Modified, c.Removed} {
			for _, f := range list {
				seen[f] = true
			}
		}
	}
	if len(seen) > MaxPushFiles {
		return nil
	}
	ev.ChangedFiles = make([]string, 0, len(seen))
	for f := range seen {
		ev.ChangedFiles = append(ev.ChangedFiles, f)
	}
	sort.Strings(ev.ChangedFiles)
	return nil
}

func fillPullRequest(ev *Event, p *ghPullRequest, before string) error {
	pr := p.PullRequest
	switch {
	case pr == nil:
		return missing("pull_request")
	case pr.Number == 0:
		return missing("pull_request.number")
	case pr.Head == nil || pr.Head.SHA == "" || pr.Head.Ref == "":
		return missing("pull_request.head")
	case pr.Base == nil || pr.Base.Ref == "":
		return missing("pull_request.base")
	}
	out := &PullRequest{
		Number:  pr.Number,
		Title:   pr.Title,
		Draft:   pr.Draft,
		Merged:  pr.Merged,
		HeadRef: pr.Head.Ref,
		HeadSHA: pr.Head.SHA,
		BaseRef: pr.Base.Ref,
		BaseSHA: pr.Base.SHA,
	}
	if pr.Body != nil {
		out.Body = *pr.Body
	}
	if pr.User != nil {
		out.Author = pr.User.Login
	}
	for _, l := range pr.Labels {
		out.Labels = append(out.Labels, l.Name)
	}
	base := ev.Repo.FullName()
	if pr.Base.Repo != nil && pr.Base.Repo.FullName != "" {
		base = pr.Base.Repo.FullName
	}
	if pr.Head.Repo != nil {
		out.HeadRepo = pr.Head.Repo.FullName
	}
	// A head repository GitHub no longer knows (a deleted fork) counts as a fork: trust is
	// only given to what is provably the same repository.
	out.Fork = out.HeadRepo == "" || !strings.EqualFold(out.HeadRepo, base)
	ev.PullRequest = out
	ev.SHA = out.HeadSHA
	ev.Branch = out.BaseRef
	ev.Ref = fmt.Sprintf("refs/pull/%d/head", out.Number)
	ev.Before = before
	return nil
}

func fillIssueComment(ev *Event, p *ghIssueComment) error {
	if p.Issue == nil || p.Issue.Number == 0 {
		return missing("issue.number")
	}
	if p.Comment == nil || p.Comment.ID == 0 {
		return missing("comment.id")
	}
	c := &Comment{
		ID:                p.Comment.ID,
		Body:              p.Comment.Body,
		AuthorAssociation: p.Comment.AuthorAssociation,
		IssueNumber:       p.Issue.Number,
		OnPullRequest:     len(p.Issue.PullRequest) > 0 && string(p.Issue.PullRequest) != "null",
	}
	if p.Comment.User != nil {
		c.Author = p.Comment.User.Login
	}
	ev.Comment = c
	if r, ok := ParseCommand(c.Body); ok {
		ev.Routine = r
	}
	return nil
}

func fillCheck(ev *Event, p *ghCheck) error {
	if ev.Kind == KindCheckSuite {
		s := p.CheckSuite
		if s == nil || s.HeadSHA == "" {
			return missing("check_suite.head_sha")
		}
		ev.SHA, ev.Before = s.HeadSHA, s.Before
		if s.HeadBranch != nil {
			ev.Branch = *s.HeadBranch
		}
	} else {
		r := p.CheckRun
		if r == nil || r.HeadSHA == "" {
			return missing("check_run.head_sha")
		}
		ev.SHA = r.HeadSHA
		switch {
		case r.HeadBranch != nil && *r.HeadBranch != "":
			ev.Branch = *r.HeadBranch
		case r.CheckSuite != nil && r.CheckSuite.HeadBranch != nil:
			ev.Branch = *r.CheckSuite.HeadBranch
		}
		if ev.Action == "rerequested" || ev.Action == "requested_action" {
			ev.Routine = RoutineFromCheckRun(r.Name, r.ExternalID)
		}
	}
	if ev.Branch != "" {
		ev.Ref = "refs/heads/" + ev.Branch
	}
	return nil
}

// CheckRunName is the name of the check run that reports a routine: `agents/<routine>`.
func CheckRunName(routine string) string { return "agents/" + routine }

// RoutineFromCheckRun recovers the routine a check run reports, for re-run requests. The
// external_id wins when it has the form `agents/<routine>` or `agents/<routine>/<anything>`
// (reporters may append a run id); otherwise the name must be exactly `agents/<routine>`.
// It returns "" for check runs that are not ours.
func RoutineFromCheckRun(name, externalID string) string {
	if rest, ok := strings.CutPrefix(externalID, "agents/"); ok {
		r, _, _ := strings.Cut(rest, "/")
		if validRoutine(r) {
			return r
		}
	}
	if rest, ok := strings.CutPrefix(name, "agents/"); ok && validRoutine(rest) {
		return rest
	}
	return ""
}
