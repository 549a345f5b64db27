// Package plan turns an event and a loaded config into concrete runs: which routines fire,
// their agents in topological order, and each agent's instances (matrix × replicas) with
// resolved prompts, argv, images, limits and network. The engine only executes plans; it never
// reads YAML. Parts that depend on earlier agents (dynamic matrices, prompts reading needs.*,
// `if:`) are compiled here and resolved by the engine through Node.Expand and Node.Condition.
package plan

import (
	"time"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/runner/event"
)

// Plan is everything one event causes.
type Plan struct {
	Event *event.Event `json:"event"`
	Runs  []*Run       `json:"runs"`
	// Skipped are the routines considered but not started, with the reason (for dry runs).
	Skipped []Skip `json:"skipped,omitempty"`
}

// Skip is a routine the event did not start.
type Skip struct {
	Routine string `json:"routine"`
	Reason  string `json:"reason"`
}

// Run is one routine fired by the event.
type Run struct {
	Routine     string `json:"routine"`
	File        string `json:"file"`
	Description string `json:"description,omitempty"`
	SHA         string `json:"sha"`
	// Concurrency has its group expression resolved; nil when the routine sets none.
	Concurrency *Concurrency `json:"concurrency,omitempty"`
	// Secrets are the secret names this run may receive: empty for fork pull requests
	// unless the routine opts in.
	Secrets []string          `json:"secrets,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	// Nodes holds one node per agent, in topological order (ties in file order).
	Nodes     []*Node `json:"nodes"`
	Publish   Publish `json:"publish"`
	MaxFanOut int     `json:"max_fan_out"`
	// Budget caps what the run's model calls through the egress proxy cost, in US dollars
	// (0: no cap).
	Budget float64 `json:"budget,omitempty"`
	// DayBudget caps what the routine's runs spend in one UTC day, across the fleet.
	DayBudget float64 `json:"day_budget,omitempty"`
	// Connectors are the MCP servers the run's agents may use (the routine's and every
	// agent's own), started or served by the runner for the run.
	Connectors []*config.Connector `json:"connectors,omitempty"`
	// Inputs are the dispatch inputs with defaults applied.
	Inputs map[string]string `json:"inputs,omitempty"`
}

// Concurrency is a resolved concurrency group.
type Concurrency struct {
	Group            string `json:"group"`
	CancelInProgress bool   `json:"cancel_in_progress"`
}

// Publish is what the run reports, with expressions resolved.
type Publish struct {
	Check       bool         `json:"check"`
	PullRequest *PullRequest `json:"pull_request,omitempty"`
	Comment     bool         `json:"comment"`
}

// PullRequest is the PR carrying the run's consolidated changes, on branch
// agents/<routine>/<Key>.
type PullRequest struct {
	Title  string   `json:"title"`
	Body   string   `json:"body,omitempty"`
	Draft  bool     `json:"draft"`
	Key    string   `json:"key"`
	Labels []string `json:"labels,omitempty"`
}

// Node is one agent of the routine. Its instances are known at plan time when nothing in
// them depends on earlier agents; otherwise Dynamic is true and Instances is a preview.
type Node struct {
	Agent string   `json:"agent"`
	Needs []string `json:"needs,omitempty"`
	// If is the `if:` source; empty means success() (all needs succeeded).
	If              string `json:"if,omitempty"`
	Dynamic         bool   `json:"dynamic,omitempty"`
	MaxParallel     int    `json:"max_parallel,omitempty"`
	FailFast        bool   `json:"fail_fast,omitempty"`
	ContinueOnError bool   `json:"continue_on_error,omitempty"`
	Replicas        int    `json:"replicas,omitempty"`
	Quorum          int    `json:"quorum,omitempty"`
	Vote            string `json:"vote,omitempty"`
	Judge           string `json:"judge,omitempty"`
	Changes         string `json:"changes"`
	// Orchestrate, when set, makes the node's one instance write a workflow that the engine
	// runs as part of the run, within this envelope.
	Orchestrate *Orchestration `json:"orchestrate,omitempty"`
	// Instances are the expanded jobs: final when !Dynamic, a preview otherwise.
	Instances []*Instance `json:"instances"`

	// compiled holds what Expand and Condition evaluate; set by Build.
	compiled *compiledNode
}

// Instance is one concrete job: one container run.
type Instance struct {
	// ID is readable and unique in the run: audit, audit[api], verify#2, audit[api,linux]#1.
	ID      string         `json:"id"`
	Agent   string         `json:"agent"`
	Matrix  map[string]any `json:"matrix,omitempty"`
	Replica int            `json:"replica,omitempty"` // 1-based; 0 without replicas
	Prompt  string         `json:"prompt,omitempty"`
	// Argv is the command run in the container (from the preset or `command:`).
	Argv       []string          `json:"argv"`
	Preset     string            `json:"preset,omitempty"`
	Image      string            `json:"image"`
	PullPolicy string            `json:"pull_policy"`
	User       string            `json:"user,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	// Secrets are the secret names handed to this instance as environment variables.
	Secrets []string `json:"secrets,omitempty"`
	// KeySecrets are the preset's model API keys among Secrets that the agent did not name
	// itself: behind an egress proxy they stay outside the container and the proxy adds them.
	KeySecrets []string `json:"key_secrets,omitempty"`
	// APIs are the providers of the model APIs the preset calls with the agent's `with:`
	// options (for aider they depend on the model): those the egress proxy may serve it.
	APIs      []string         `json:"apis,omitempty"`
	Timeout   time.Duration    `json:"timeout"`
	Resources config.Resources `json:"resources"`
	Limits    config.Limits    `json:"limits,omitzero"`
	Network   config.Network   `json:"network"`
	// Connectors name the run's connectors (Run.Connectors) the instance may use.
	Connectors []string `json:"connectors,omitempty"`
}

// Result values of an agent, as `needs.<agent>.result` shows them.
const (
	ResultSuccess   = "success"
	ResultFailure   = "failure"
	ResultCancelled = "cancelled"
	ResultSkipped   = "skipped"
	ResultNoQuorum  = "no_quorum"
	// ResultBudgetExceeded: the agent's jobs failed only because the run's budget for model
	// calls was spent. failure() is true for it.
	ResultBudgetExceeded = "budget_exceeded"
)

// NeedResult is what a finished agent exposes to its dependents. For a fanned-out agent
// Outputs is the list of each instance's outputs (in instance order) and Result is success
// only when every instance succeeded.
type NeedResult struct {
	Result  string `json:"result"`
	Outputs any    `json:"outputs"` // map[string]any, or []any of them when fanned out
	Report  string `json:"report,omitempty"`
	// Counts by result, for fanned-out agents.
	Counts map[string]int `json:"counts,omitempty"`
}

// State is what the engine knows when it resolves a node: the results of finished agents
// and the status functions' view of the run.
type State struct {
	Needs map[string]NeedResult
	// Cancelled is true once the run is being cancelled: cancelled() then holds.
	Cancelled bool
}
