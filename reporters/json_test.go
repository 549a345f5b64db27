package reporters

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/runner/result"
)

// A finished job's JSON line carries what its workspace took on disk.
func TestJSONJobCarriesItsDiskUse(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	job := &result.Job{ID: "a", Agent: "a", Outcome: result.Success, DiskUsage: 4096}
	report(t, NewJSON(&buf), runInfo(), time.Now(), Update{Kind: JobFinished, Job: job})
	var line struct {
		Job struct {
			DiskUsage int64 `json:"disk_usage"`
		} `json:"job"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line.Job.DiskUsage != 4096 {
		t.Errorf("line %s: disk_usage %d (%v), want 4096", buf.String(), line.Job.DiskUsage, err)
	}
}
