// Package config owns the `.agents/*.yaml` format: its Go types, strict loading with
// file:line:col errors, validation, defaults and the JSON Schema. It knows nothing about
// events, Docker or GitHub; the loaded value is plain data that the planner turns into a plan.
package config

import (
	"slices"
	"time"
)

// Pos is a position in a config file. Line and Col are 1-based; zero means unknown.
type Pos struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
}

// Config is every routine loaded from one `.agents` directory, in file-name order.
type Config struct {
	Dir      string     `json:"dir"`
	Routines []*Routine `json:"routines"`
}

// Routine is one `.agents/<name>.yaml` file: triggers, defaults, agents and what to publish.
type Routine struct {
	Pos         Pos               `json:"pos"`
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	On          Triggers          `json:"on"`
	Concurrency *Concurrency      `json:"concurrency,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	// Secrets names the secrets the runner may hand to this routine's agents. Values never
	// live in the repository and are never interpolated into text.
	Secrets []string `json:"secrets,omitempty"`
	// Connectors are the MCP servers every agent of the routine may use, in file order.
	Connectors []*Connector  `json:"connectors,omitempty"`
	Defaults   AgentDefaults `json:"defaults"`
	// Agents keeps file order; the planner sorts them topologically.
	Agents  []*Agent `json:"agents"`
	Publish Publish  `json:"publish"`
	// MaxFanOut caps the instances of one agent (matrix × replicas); 0 means the default (256).
	MaxFanOut int `json:"max_fan_out,omitempty"`
	// Budget caps what the run's model calls cost (nil: no cap).
	Budget *Budget `json:"budget,omitempty"`
	// ValuePos is where the text of each field that may hold expressions starts, by path
	// ("env.NAME", "concurrency.group", "publish.pull-request.title"), so that an error
	// found in it after loading points at the text. Not part of the format.
	ValuePos map[string]Pos `json:"-"`
}

// Budget caps model spend, in US dollars.
type Budget struct {
	Pos Pos     `json:"pos"`
	Run float64 `json:"run,omitempty"`
	Day float64 `json:"day,omitempty"`
}

// Triggers is the `on:` block. A nil field means the routine does not react to that event.
type Triggers struct {
	Push         *PushTrigger         `json:"push,omitempty"`
	PullRequest  *PullRequestTrigger  `json:"pull_request,omitempty"`
	IssueComment *IssueCommentTrigger `json:"issue_comment,omitempty"`
	Schedule     []Schedule           `json:"schedule,omitempty"`
	Dispatch     *DispatchTrigger     `json:"dispatch,omitempty"`
	Webhook      *WebhookTrigger      `json:"webhook,omitempty"`
}

// PushTrigger filters push events with GitHub Actions semantics.
type PushTrigger struct {
	Pos            Pos      `json:"pos"`
	Branches       []string `json:"branches,omitempty"`
	BranchesIgnore []string `json:"branches-ignore,omitempty"`
	Tags           []string `json:"tags,omitempty"`
	TagsIgnore     []string `json:"tags-ignore,omitempty"`
	Paths          []string `json:"paths,omitempty"`
	PathsIgnore    []string `json:"paths-ignore,omitempty"`
}

// PullRequestTrigger filters pull_request events. Branches match the base branch.
type PullRequestTrigger struct {
	Pos            Pos      `json:"pos"`
	Types          []string `json:"types,omitempty"` // default: opened, synchronize, reopened
	Branches       []string `json:"branches,omitempty"`
	BranchesIgnore []string `json:"branches-ignore,omitempty"`
	Paths          []string `json:"paths,omitempty"`
	PathsIgnore    []string `json:"paths-ignore,omitempty"`
	// ForkSecrets opts in to handing secrets to runs of pull requests from forks (`fork-secrets`).
	ForkSecrets bool `json:"fork-secrets,omitempty"`
}

// IssueCommentTrigger lets `/agents run <routine>` on a pull request start the routine.
type IssueCommentTrigger struct {
	Pos   Pos      `json:"pos"`
	Types []string `json:"types,omitempty"` // default: created
}

// Schedule is one cron entry; Timezone is an IANA name, UTC when empty.
type Schedule struct {
	Pos      Pos    `json:"pos"`
	Cron     string `json:"cron"`
	Timezone string `json:"timezone,omitempty"`
}

// DispatchTrigger allows API and `runner dispatch` runs with typed inputs.
type DispatchTrigger struct {
	Pos    Pos      `json:"pos"`
	Inputs []*Input `json:"inputs,omitempty"` // in file order
}

// Input is one dispatch input.
type Input struct {
	Pos         Pos      `json:"pos"`
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Required    bool     `json:"required,omitempty"`
	Default     string   `json:"default,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// WebhookTrigger accepts an external system's HMAC-signed JSON at /hooks/{owner}/{repo}/{routine}.
// The secret is named here and its value lives in the runner.
type WebhookTrigger struct {
	Pos    Pos    `json:"pos"`
	Secret string `json:"secret,omitempty"` // name of the runner secret holding the HMAC key
}

// Concurrency groups runs; a newer run in the same group waits or cancels the older one.
type Concurrency struct {
	Pos              Pos    `json:"pos"`
	Group            string `json:"group"` // may hold ${{ }} expressions
	CancelInProgress bool   `json:"cancel-in-progress,omitempty"`
}

// AgentDefaults is the `defaults:` block, merged into every agent that does not set the field.
type AgentDefaults struct {
	Image      string        `json:"image,omitempty"`
	PullPolicy string        `json:"pull-policy,omitempty"`
	Timeout    time.Duration `json:"timeout,omitempty"`
	Resources  Resources     `json:"resources"`
	Limits     Limits        `json:"limits"`
	Network    *Network      `json:"network,omitempty"`
	User       string        `json:"user,omitempty"`
}

// Resources are container limits. Zero means the runner's default.
type Resources struct {
	CPUs   float64 `json:"cpus,omitempty"`
	Memory int64   `json:"memory,omitempty"` // bytes; written as 512m, 2g
	Pids   int64   `json:"pids,omitempty"`
	// Disk bounds what the agent may write into /workspace and its output directory, in
	// bytes; an agent over it is stopped with the outcome disk_limit.
	Disk int64 `json:"disk,omitempty"`
}

// Limits bound what an agent's run may leave behind, in bytes. Zero means the runner's default.
type Limits struct {
	// ChangedFile is the largest one changed file of a `changes: keep` agent may be.
	ChangedFile int64 `json:"changed-file,omitempty"`
	// Patch is the largest the patch of a `changes: keep` agent may be.
	Patch int64 `json:"patch,omitempty"`
}

// Network modes.
const (
	NetworkNone  = "none"  // loopback only (the default)
	NetworkOpen  = "open"  // full egress
	NetworkAllow = "allow" // egress only to Allow, through the runner's proxy
)

// Network is an agent's egress policy: `none`, `open`, or `{allow: [host:port, ...]}`.
type Network struct {
	Pos   Pos      `json:"pos"`
	Mode  string   `json:"mode"`
	Allow []string `json:"allow,omitempty"`
}

// Changes policies.
const (
	ChangesDiscard = "discard"
	ChangesKeep    = "keep"
)

// Agent is one entry under `agents:`. After loading, defaults are merged in, so Image,
// Timeout, Resources and Network are concrete.
type Agent struct {
	Pos Pos `json:"pos"`
	// ValuePos is Routine.ValuePos for the agent's fields: "prompt", "if", "command[0]",
	// "env.NAME", "with.KEY".
	ValuePos map[string]Pos `json:"-"`
	Name     string         `json:"name"`
	Uses     string         `json:"uses,omitempty"` // preset: claude-code, codex, aider, gemini
	With     map[string]any `json:"with,omitempty"` // preset options
	Command  []string       `json:"command,omitempty"`
	Prompt   string         `json:"prompt,omitempty"` // may hold ${{ }} expressions
	Image    string         `json:"image"`
	// PullPolicy is never, if-missing (default) or always.
	PullPolicy string            `json:"pull-policy,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	// Secrets are the routine secrets this agent receives as environment variables.
	// Empty means the preset's API key only.
	Secrets []string `json:"secrets,omitempty"`
	// Connectors are MCP servers this agent may use besides the routine's, in file order;
	// Routine.AgentConnectors gives both.
	Connectors      []*Connector  `json:"connectors,omitempty"`
	Needs           []string      `json:"needs,omitempty"`
	If              string        `json:"if,omitempty"`
	Matrix          *Matrix       `json:"matrix,omitempty"`
	MaxParallel     int           `json:"max-parallel,omitempty"`
	FailFast        bool          `json:"fail-fast,omitempty"`
	ContinueOnError bool          `json:"continue-on-error,omitempty"`
	Replicas        int           `json:"replicas,omitempty"` // 0 or 1: a single instance
	Quorum          int           `json:"quorum,omitempty"`
	Vote            string        `json:"vote,omitempty"`  // the outputs key replicas vote on
	Judge           string        `json:"judge,omitempty"` // an agent that decides instead of the vote
	Outputs         []string      `json:"outputs,omitempty"`
	Changes         string        `json:"changes"` // keep or discard
	Timeout         time.Duration `json:"timeout"`
	Resources       Resources     `json:"resources"`
	Limits          Limits        `json:"limits"`
	// Network is never open for an agent with connectors (routine-level or its own), and its
	// none becomes allow with an empty Allow list: on the run's internal network, where the
	// connectors are, with nothing outside.
	Network Network `json:"network"`
	User    string  `json:"user,omitempty"`
	// Orchestrate makes the agent write a workflow that the runner then runs as a sub-graph of
	// the run, within the envelope it sets (nil: an ordinary agent).
	Orchestrate *Orchestrate `json:"orchestrate,omitempty"`
}

// Connector is one MCP server agents may use: a remote one (URL) reached through the run's
// egress proxy, which adds the credential, or a local one (Image) the runner starts as a
// sidecar container per run and bridges to streamable HTTP.
type Connector struct {
	Pos  Pos    `json:"pos"`
	Name string `json:"name"`
	// Remote: URL of a streamable-HTTP MCP endpoint; Secret names the routine secret sent as
	// its bearer token (by the proxy, never seen by the agent).
	URL    string `json:"url,omitempty"`
	Secret string `json:"secret,omitempty"`
	// Local: Image and Command of a stdio MCP server (Command empty: the image's own
	// entrypoint and command); Env plain variables and Secrets routine secrets handed to the
	// sidecar only, as environment variables; Network its egress (none or an allow list).
	// After loading, a local connector's Network is never nil (none when unset); a remote
	// one's always is.
	Image   string            `json:"image,omitempty"`
	Command []string          `json:"command,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Secrets []string          `json:"secrets,omitempty"`
	Network *Network          `json:"network,omitempty"`
	// Tools, when set, are the only tools agents may list and call.
	Tools []string `json:"tools,omitempty"`
}

// Remote reports whether c is a remote server (URL) rather than a local one (Image).
func (c *Connector) Remote() bool { return c.URL != "" }

// Orchestrate is an orchestrating agent's envelope: what the workflow it writes may ask for.
// The generated workflow cannot widen any of it.
type Orchestrate struct {
	Pos Pos `json:"pos"`
	// Images the generated agents may use; empty: the orchestrator's own image only.
	Images []string `json:"images,omitempty"`
	// MaxAgents bounds the generated workflow's instances in all (every agent's matrix ×
	// replicas, summed); MaxInstances bounds one agent's.
	MaxAgents    int `json:"max-agents"`
	MaxInstances int `json:"max-instances"`
	// MaxDepth is how many levels of orchestration the orchestrator starts: 1 (default) lets
	// its workflow hold no orchestrator of its own, 2 lets it hold one whose workflow holds
	// none, and so on.
	MaxDepth int `json:"max-depth"`
	// Timeout is the wall-clock budget of the whole generated sub-graph.
	Timeout time.Duration `json:"timeout"`
	// Retries is how often a workflow that does not load or validate is handed back to the
	// orchestrator with its errors before the agent fails.
	Retries int `json:"retries"`
}

// Defaults of an orchestrator's envelope.
const (
	DefaultOrchestrateMaxAgents    = 100
	DefaultOrchestrateMaxInstances = 50
	DefaultOrchestrateMaxDepth     = 1
	DefaultOrchestrateTimeout      = time.Hour
	DefaultOrchestrateRetries      = 2
)

// Matrix fans an agent out. Each axis is either a static list or one `${{ }}` expression
// evaluated when the agent's needs finish (a dynamic axis). A whole-matrix expression
// (`matrix: ${{ fromJSON(...) }}`, yielding a list of objects) is held in Expr.
type Matrix struct {
	Pos     Pos              `json:"pos"`
	Axes    []MatrixAxis     `json:"axes,omitempty"` // in file order
	Include []map[string]any `json:"include,omitempty"`
	Exclude []map[string]any `json:"exclude,omitempty"`
	Expr    string           `json:"expr,omitempty"`
}

// MatrixAxis is one axis: Values when static, Expr when dynamic.
type MatrixAxis struct {
	Pos    Pos    `json:"pos"`
	Name   string `json:"name"`
	Values []any  `json:"values,omitempty"`
	Expr   string `json:"expr,omitempty"`
}

// Dynamic reports whether any part of the matrix is known only at run time.
func (m *Matrix) Dynamic() bool {
	if m == nil {
		return false
	}
	if m.Expr != "" {
		return true
	}
	for _, a := range m.Axes {
		if a.Expr != "" {
			return true
		}
	}
	return false
}

// Publish says what a run reports back.
type Publish struct {
	Check       bool         `json:"check"`
	PullRequest *PullRequest `json:"pull-request,omitempty"`
	Comment     bool         `json:"comment,omitempty"`
}

// PullRequest is the PR that carries a run's consolidated changes.
type PullRequest struct {
	Pos    Pos      `json:"pos"`
	Title  string   `json:"title"` // may hold ${{ }} expressions
	Body   string   `json:"body,omitempty"`
	Draft  bool     `json:"draft"`
	Branch string   `json:"branch,omitempty"` // the <key> in agents/<routine>/<key>; expression allowed
	Labels []string `json:"labels,omitempty"`
}

// Agent returns the agent with the given name, or nil.
func (r *Routine) Agent(name string) *Agent {
	for _, a := range r.Agents {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// AgentConnectors returns the connectors agent a may use: the routine's, then a's own, each in
// file order (nil when there are none). The slice is new; the connectors are shared.
func (r *Routine) AgentConnectors(a *Agent) []*Connector {
	return slices.Concat(r.Connectors, a.Connectors)
}

// Routine returns the routine with the given name, or nil.
func (c *Config) Routine(name string) *Routine {
	for _, r := range c.Routines {
		if r.Name == name {
			return r
		}
	}
	return nil
}
