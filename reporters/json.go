package reporters

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

// JSON writes one JSON object per update (JSON Lines), for scripts and CI logs.
type JSON struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewJSON returns a JSON Lines reporter writing to w.
func NewJSON(w io.Writer) *JSON { return &JSON{enc: json.NewEncoder(w)} }

type jsonLine struct {
	Kind      Kind             `json:"kind"`
	Time      time.Time        `json:"time"`
	RunID     string           `json:"run_id"`
	Routine   string           `json:"routine"`
	Agent     string           `json:"agent,omitempty"`
	Instances []*plan.Instance `json:"instances,omitempty"`
	Job       *result.Job      `json:"job,omitempty"`
	JobID     string           `json:"job_id,omitempty"`
	AgentRes  *result.Agent    `json:"agent_result,omitempty"`
	Result    *result.Run      `json:"result,omitempty"`
}

// Report implements Reporter.
func (j *JSON) Report(_ context.Context, u Update) error {
	line := jsonLine{Kind: u.Kind, Time: u.Time, RunID: u.Run.ID, Routine: u.Run.Plan.Routine, Agent: u.Agent,
		Instances: u.Instances, Job: u.Job, AgentRes: u.AgentRes, Result: u.Result}
	if u.Instance != nil && u.Job == nil {
		line.JobID = u.Instance.ID
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.enc.Encode(line)
}
