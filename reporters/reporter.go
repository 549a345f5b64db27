// Package reporters tells people what a run is doing and what it produced: a live terminal
// view, JSON lines, and GitHub check runs, pull requests and comments. Reporters receive
// Updates from the engine; they never change the run.
package reporters

import (
	"context"
	"errors"
	"time"

	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

// Kind says what an Update is about.
type Kind string

// Update kinds, in the order a run emits them.
const (
	RunQueued     Kind = "run_queued"     // planned; nothing started
	RunStarted    Kind = "run_started"    // the first job is about to start
	AgentExpanded Kind = "agent_expanded" // an agent's instances are known (Instances)
	JobStarted    Kind = "job_started"    // Instance started
	JobLog        Kind = "job_log"        // Instance printed Line; only to reporters that FollowLogs
	JobFinished   Kind = "job_finished"   // Job holds the result
	AgentFinished Kind = "agent_finished" // Agent holds the agent's result
	RunFinished   Kind = "run_finished"   // Result holds everything
)

// RunInfo identifies a run for reporters.
type RunInfo struct {
	ID    string
	Repo  string
	Plan  *plan.Run
	Event *event.Event
	// DetailsURL links to the run on the runner's web UI, when there is one.
	DetailsURL string
}

// Update is one thing that happened in a run.
type Update struct {
	Kind      Kind
	Time      time.Time
	Run       *RunInfo
	Agent     string
	Instances []*plan.Instance
	Instance  *plan.Instance
	Job       *result.Job
	AgentRes  *result.Agent
	Result    *result.Run
	// Line is one line a job printed (JobLog), without its line break, secrets masked as in
	// log.txt. It is the agent's text: escape it before showing it on a terminal.
	Line string
}

// Reporter receives a run's updates. Report is called from one goroutine per run, in order;
// an error is logged by the engine and never stops the run.
type Reporter interface {
	Report(ctx context.Context, u Update) error
}

// LogFollower is a Reporter that also wants every line its jobs print, as JobLog updates.
// The engine sends them only to reporters that ask, so the others (GitHub, the daemon's log)
// cost nothing per line.
type LogFollower interface {
	Reporter
	FollowLogs() bool
}

// FollowsLogs says whether r wants JobLog updates.
func FollowsLogs(r Reporter) bool {
	f, ok := r.(LogFollower)
	return ok && f.FollowLogs()
}

// Multi sends each update to every reporter and joins their errors.
type Multi []Reporter

// FollowLogs implements LogFollower: a Multi follows logs when one of its reporters does,
// and hands JobLog updates to those only.
func (m Multi) FollowLogs() bool {
	for _, r := range m {
		if FollowsLogs(r) {
			return true
		}
	}
	return false
}

// Report implements Reporter.
func (m Multi) Report(ctx context.Context, u Update) error {
	var errs []error
	for _, r := range m {
		if u.Kind == JobLog && !FollowsLogs(r) {
			continue
		}
		if err := r.Report(ctx, u); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
