// Package result holds what a run produces: per-job outcomes, outputs, reports, findings and
// changes, and the run's consolidated patch and report. It is plain data shared by the engine,
// the reporters and the store; it does no I/O.
package result

import "time"

// Outcome is how one job ended. Infrastructure failures (Docker or git broke) are Error,
// kept apart from the agent's own failure so reporters and retries can tell them apart.
type Outcome string

// Outcomes.
const (
	Success  Outcome = "success"
	Failed   Outcome = "failed"
	TimedOut Outcome = "timed_out"
	OOM      Outcome = "out_of_memory"
	// DiskLimit is an agent stopped for writing more than its disk limit.
	DiskLimit Outcome = "disk_limit"
	Cancelled Outcome = "cancelled"
	Skipped   Outcome = "skipped"
	Error     Outcome = "error"
	// BudgetExceeded is a job whose model calls were refused because its run's budget was
	// spent.
	BudgetExceeded Outcome = "budget_exceeded"
)

// Conclusion is a run's overall verdict, named as GitHub check runs name them.
type Conclusion string

// Conclusions.
const (
	ConclusionSuccess   Conclusion = "success"
	ConclusionFailure   Conclusion = "failure"
	ConclusionCancelled Conclusion = "cancelled"
	ConclusionTimedOut  Conclusion = "timed_out"
	ConclusionNeutral   Conclusion = "neutral"
)

// Finding is one entry of findings.json; it becomes a check-run annotation.
type Finding struct {
	Path    string `json:"path"`
	Line    int    `json:"line"`
	EndLine int    `json:"end_line,omitempty"`
	Level   string `json:"level"` // notice, warning, failure
	Message string `json:"message"`
	Title   string `json:"title,omitempty"`
	Job     string `json:"job,omitempty"`
}

// FileChange is one changed path.
type FileChange struct {
	Path    string `json:"path"`
	OldPath string `json:"old_path,omitempty"`
	Status  string `json:"status"` // added, modified, deleted, renamed
	Binary  bool   `json:"binary,omitempty"`
}

// Changes is what a job changed in its workspace against the base commit.
type Changes struct {
	// PatchFile is the job's patch on disk (its changes.patch); empty when nothing changed.
	// Patches are read from there when needed, never kept in memory for a whole run.
	PatchFile string `json:"-"`
	// PatchSize is PatchFile's size in bytes.
	PatchSize int64        `json:"patch_size,omitempty"`
	Files     []FileChange `json:"files,omitempty"`
}

// Usage is what the agent CLI reported about itself, when its preset can parse it.
type Usage struct {
	CostUSD      float64 `json:"cost_usd,omitempty"`
	InputTokens  int     `json:"input_tokens,omitempty"`
	OutputTokens int     `json:"output_tokens,omitempty"`
	Turns        int     `json:"turns,omitempty"`
}

// Job is the result of one instance.
type Job struct {
	ID       string         `json:"id"`
	Agent    string         `json:"agent"`
	Replica  int            `json:"replica,omitempty"`
	Matrix   map[string]any `json:"matrix,omitempty"`
	Outcome  Outcome        `json:"outcome"`
	ExitCode int            `json:"exit_code"`
	Started  time.Time      `json:"started"`
	Finished time.Time      `json:"finished"`
	// Error explains a failure that is not the exit code: an infrastructure error, a
	// preset-reported error, a skipped condition.
	Error    string         `json:"error,omitempty"`
	Outputs  map[string]any `json:"outputs,omitempty"`
	Report   string         `json:"report,omitempty"`
	Final    string         `json:"final,omitempty"` // the agent's final message, from its preset
	Findings []Finding      `json:"findings,omitempty"`
	Changes  *Changes       `json:"changes,omitempty"`
	// DiskUsage is what the job's workspace took on disk of its own once the agent ended, in
	// bytes: its overlay's upper layer, or its private checkout.
	DiskUsage int64  `json:"disk_usage,omitempty"`
	Usage     Usage  `json:"usage"`
	LogPath   string `json:"log_path,omitempty"`
	LogTail   string `json:"log_tail,omitempty"`
	// Blocked lists the egress destinations refused to this job: by the proxy, and direct
	// connections that bypassed it (which the network cannot route).
	Blocked []string `json:"blocked,omitempty"`
	// Workflow is the workflow an orchestrating agent wrote and the runner ran; WorkflowErrors
	// why the one this attempt wrote was refused.
	Workflow       string `json:"workflow,omitempty"`
	WorkflowErrors string `json:"workflow_errors,omitempty"`
	// Metered is what the job's model calls through the egress proxy cost, as the proxy
	// metered them from the APIs' own usage (Usage is the agent's own account of it).
	Metered *Metered `json:"metered,omitempty"`
}

// Metered is a job's model calls as the egress proxy metered them.
type Metered struct {
	USD          float64 `json:"usd"`
	Calls        int     `json:"calls"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	// Unpriced counts calls of models the price table does not know (priced at its dearest).
	Unpriced int `json:"unpriced,omitempty"`
	// Refused counts calls refused because the run's budget was spent.
	Refused int `json:"refused,omitempty"`
	// RunUSD is the run's spend when the job ended; Budget the run's cap (0: none).
	RunUSD float64 `json:"run_usd,omitempty"`
	Budget float64 `json:"budget,omitempty"`
}

// Duration is how long the job ran.
func (j *Job) Duration() time.Duration {
	if j.Started.IsZero() || j.Finished.IsZero() {
		return 0
	}
	return j.Finished.Sub(j.Started)
}

// Vote records a quorum decision among replicas.
type Vote struct {
	Key     string         `json:"key"`
	Quorum  int            `json:"quorum"`
	Winner  any            `json:"winner,omitempty"`
	Reached bool           `json:"reached"`
	Tally   map[string]int `json:"tally"`
	// Dissent names the replicas that voted otherwise (or failed to vote).
	Dissent []string `json:"dissent,omitempty"`
	// WinningJob is the replica whose outputs and changes stand for the agent.
	WinningJob string `json:"winning_job,omitempty"`
	Judge      string `json:"judge,omitempty"`
	// Matrix is the combination voted on, when the agent fans out and has replicas: each
	// combination's replicas vote among themselves.
	Matrix map[string]any `json:"matrix,omitempty"`
}

// Agent is the result of one agent across its instances.
type Agent struct {
	Name string `json:"name"`
	// Result is as `needs.<agent>.result` shows it: success, failure, cancelled, skipped, no_quorum.
	Result string         `json:"result"`
	Jobs   []string       `json:"jobs"`
	Counts map[string]int `json:"counts,omitempty"`
	Vote   *Vote          `json:"vote,omitempty"`
	// Votes holds one vote per matrix combination for a fanned-out agent with replicas.
	Votes []*Vote `json:"votes,omitempty"`
	// ContinueOnError means a failure here does not fail the run.
	ContinueOnError bool `json:"continue_on_error,omitempty"`
}

// Conflict is a kept patch that could not be merged into the consolidated changes.
type Conflict struct {
	Job   string   `json:"job"`
	Files []string `json:"files"`
}

// Run is the whole result of one routine run.
type Run struct {
	ID         string     `json:"id"`
	Routine    string     `json:"routine"`
	Repo       string     `json:"repo,omitempty"`
	SHA        string     `json:"sha"`
	Started    time.Time  `json:"started"`
	Finished   time.Time  `json:"finished"`
	Conclusion Conclusion `json:"conclusion"`
	Agents     []*Agent   `json:"agents"`
	Jobs       []*Job     `json:"jobs"`
	// Patch is the consolidated change of every `changes: keep` agent; Files lists it.
	Patch     []byte       `json:"-"`
	Files     []FileChange `json:"files,omitempty"`
	Applied   []string     `json:"applied,omitempty"`
	Conflicts []Conflict   `json:"conflicts,omitempty"`
	// Commit is the consolidated commit in the repository's object store, when made.
	Commit string `json:"commit,omitempty"`
	Report string `json:"report"`
	Error  string `json:"error,omitempty"`
}

// Job returns the job with that id, or nil.
func (r *Run) Job(id string) *Job {
	for _, j := range r.Jobs {
		if j.ID == id {
			return j
		}
	}
	return nil
}

// Findings gathers every job's findings, tagged with the job.
func (r *Run) Findings() []Finding {
	var out []Finding
	for _, j := range r.Jobs {
		for _, f := range j.Findings {
			f.Job = j.ID
			out = append(out, f)
		}
	}
	return out
}

// Usage sums the usage of every job.
func (r *Run) Usage() Usage {
	var u Usage
	for _, j := range r.Jobs {
		u.CostUSD += j.Usage.CostUSD
		u.InputTokens += j.Usage.InputTokens
		u.OutputTokens += j.Usage.OutputTokens
		u.Turns += j.Usage.Turns
	}
	return u
}
