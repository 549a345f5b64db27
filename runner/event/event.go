// Package event owns the normalized Event that every trigger becomes (GitHub webhooks,
// schedules, dispatches, generic webhooks, local `runner exec`) and matching events against a
// routine's `on:` block with GitHub Actions semantics. It knows nothing about Docker or the store.
package event

// Kinds of event.
const (
	KindPush         = "push"
	KindPullRequest  = "pull_request"
	KindIssueComment = "issue_comment"
	KindCheckRun     = "check_run"
	KindCheckSuite   = "check_suite"
	KindSchedule     = "schedule"
	KindDispatch     = "dispatch"
	KindWebhook      = "webhook"
	// KindInstallation and KindPing are GitHub events that never start a routine; they are
	// normalized so the server can record and answer them like any other delivery.
	KindInstallation = "installation"
	KindPing         = "ping"
)

// Event is a trigger normalized for matching and planning. Payload keeps the original JSON
// object: it is the `event` context of expressions, and reaches prompts only as data.
type Event struct {
	Kind   string `json:"kind"`
	Action string `json:"action,omitempty"`
	Repo   Repo   `json:"repo"`
	// Ref is the full git ref (refs/heads/main, refs/tags/v1); Branch or Tag is its short name.
	Ref    string `json:"ref,omitempty"`
	Branch string `json:"branch,omitempty"`
	Tag    string `json:"tag,omitempty"`
	// SHA is the commit the routine runs at; Before is the push's previous tip.
	SHA     string `json:"sha"`
	Before  string `json:"before,omitempty"`
	Created bool   `json:"created,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
	// ChangedFiles are the paths the event touches; nil means unknown, and a routine with
	// path filters then runs (as GitHub does when it cannot tell).
	ChangedFiles []string     `json:"changed_files,omitempty"`
	PullRequest  *PullRequest `json:"pull_request,omitempty"`
	Comment      *Comment     `json:"comment,omitempty"`
	// Routine names the routine an event targets directly: dispatch, generic webhook,
	// `/agents run <routine>` comments and check-run re-requests.
	Routine string `json:"routine,omitempty"`
	// Cron is the schedule entry that fired, for schedule events.
	Cron           string            `json:"cron,omitempty"`
	Inputs         map[string]string `json:"inputs,omitempty"`
	Sender         string            `json:"sender,omitempty"`
	InstallationID int64             `json:"installation_id,omitempty"`
	DeliveryID     string            `json:"delivery_id,omitempty"`
	Payload        map[string]any    `json:"-"`
}

// Repo identifies the repository an event belongs to.
type Repo struct {
	Owner         string `json:"owner"`
	Name          string `json:"name"`
	CloneURL      string `json:"clone_url,omitempty"`
	DefaultBranch string `json:"default_branch,omitempty"`
	Private       bool   `json:"private,omitempty"`
}

// FullName is owner/name.
func (r Repo) FullName() string { return r.Owner + "/" + r.Name }

// PullRequest is the part of a pull request that matching, trust and reporting need.
type PullRequest struct {
	Number int    `json:"number"`
	Title  string `json:"title"`
	Body   string `json:"body,omitempty"`
	Author string `json:"author"`
	Draft  bool   `json:"draft,omitempty"`
	// HeadRef/HeadSHA/HeadRepo describe the proposed changes; BaseRef/BaseSHA the target.
	HeadRef  string   `json:"head_ref"`
	HeadSHA  string   `json:"head_sha"`
	HeadRepo string   `json:"head_repo"` // owner/name
	BaseRef  string   `json:"base_ref"`
	BaseSHA  string   `json:"base_sha"`
	Fork     bool     `json:"fork"` // head lives in another repository: base config, no secrets
	Labels   []string `json:"labels,omitempty"`
	Merged   bool     `json:"merged,omitempty"`
}

// Comment is an issue or pull request comment.
type Comment struct {
	ID                int64  `json:"id"`
	Body              string `json:"body"`
	Author            string `json:"author"`
	AuthorAssociation string `json:"author_association,omitempty"`
	OnPullRequest     bool   `json:"on_pull_request"`
	IssueNumber       int    `json:"issue_number"`
}
