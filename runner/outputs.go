package runner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"strings"
	"sync"

	"github.com/agentrunner/agentrunner/internal/safefile"
	"github.com/agentrunner/agentrunner/preset"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

// Limits on what an agent may hand back, so one runaway agent cannot exhaust the runner.
const (
	maxOutputsBytes  = 1 << 20
	maxReportBytes   = 1 << 20
	maxFindingsBytes = 4 << 20
)

// readOutputs reads the files the container contract defines from the output directory:
// outputs.json, report.md and findings.json. A malformed file fails a job that had succeeded,
// with the reason, rather than being silently ignored. The agent owns the directory, so a file
// that is not a regular file (a symlink to a host file, a FIFO that would block) is refused.
func readOutputs(dir string, j *result.Job) {
	var problems []string
	if b, err := readCapped(dir, "outputs.json", maxOutputsBytes); err != nil {
		problems = append(problems, err.Error())
	} else if b != nil {
		if err := json.Unmarshal(b, &j.Outputs); err != nil {
			problems = append(problems, fmt.Sprintf("outputs.json must be a JSON object of key → value: %v", err))
		}
	}
	if b, err := readCapped(dir, "report.md", maxReportBytes); err != nil {
		problems = append(problems, err.Error())
	} else if b != nil {
		j.Report = string(b)
	}
	if b, err := readCapped(dir, "findings.json", maxFindingsBytes); err != nil {
		problems = append(problems, err.Error())
	} else if b != nil {
		if err := json.Unmarshal(b, &j.Findings); err != nil {
			problems = append(problems, fmt.Sprintf("findings.json must be a JSON list of {path, line, level, message}: %v", err))
		}
	}
	if len(problems) == 0 {
		return
	}
	j.Error = strings.Join(append([]string{j.Error}, problems...), "; ")
	j.Error = strings.TrimPrefix(j.Error, "; ")
	if j.Outcome == result.Success {
		j.Outcome = result.Failed
	}
}

// readCapped reads the file name of the agent's output directory; nil when there is none.
func readCapped(dir, name string, limit int64) ([]byte, error) {
	b, err := safefile.Read(dir, name, limit)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// applyPreset reads the agent CLI's own structured result, because these tools can exit 0
// on failure; its final message stands in for a missing report.
func applyPreset(name string, stdout []byte, j *result.Job) {
	if name == "" {
		return
	}
	p, ok := preset.Get(name)
	if !ok {
		return
	}
	res, err := p.Parse(stdout)
	if err != nil || res == nil {
		if j.Outcome == result.Success {
			j.Outcome = result.Failed
			j.Error = fmt.Sprintf("%s: could not read its result: %v", name, err)
		}
		return
	}
	j.Usage = result.Usage{CostUSD: res.CostUSD, InputTokens: res.InputTokens, OutputTokens: res.OutputTokens, Turns: res.Turns}
	j.Final = res.Final
	if j.Report == "" {
		j.Report = res.Final
	}
	if !res.OK && j.Outcome == result.Success {
		j.Outcome = result.Failed
		j.Error = fmt.Sprintf("%s reported an error: %s", name, res.Error)
	}
}

// tailBuffer keeps the last n bytes written: the log tail shown for a failing agent.
type tailBuffer struct {
	mu  sync.Mutex
	n   int
	buf []byte
}

func newTailBuffer(n int) *tailBuffer { return &tailBuffer{n: n} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.n; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// capBuffer keeps the first n bytes written and drops the rest: the output a preset parses.
type capBuffer struct {
	mu  sync.Mutex
	n   int
	buf bytes.Buffer
}

func newCapBuffer(n int) *capBuffer { return &capBuffer{n: n} }

func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.n - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (c *capBuffer) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Bytes()
}

// JobDirName is the directory of job id under a run's jobs/ (`audit[api,linux]#2` becomes a
// file name); a hash suffix keeps two ids that differ only in punctuation apart. The read API
// finds job logs with it.
func JobDirName(id string) string {
	var b strings.Builder
	changed := false
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
			changed = true
		}
	}
	if !changed {
		return id
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return fmt.Sprintf("%s-%08x", b.String(), h.Sum32())
}

// JobAgent is the agent of job id: what precedes its fan-out key ("[…]"), replica number
// ("#n") or attempt ("~n"). Agent names hold none of those; a workflow's agents hold "/".
func JobAgent(id string) string {
	if i := strings.IndexAny(id, "[#~"); i >= 0 {
		return id[:i]
	}
	return id
}

// defuseOutputs leaves the job's output directory, which the agent wrote and which `runner
// exec` keeps inside the user's repository, holding only plain files and directories: no
// symlink, FIFO or device, no planted .git that an editor or a prompt would run git in.
func (r *runState) defuseOutputs(inst *plan.Instance, dir string) {
	removed, err := safefile.Defuse(dir)
	for _, x := range removed {
		r.log.Warn("removed from the agent's output directory", "job", inst.ID, "name", x.Name, "was", x.Why)
	}
	if err != nil {
		r.log.Warn("clean the agent's output directory", "job", inst.ID, "err", err)
	}
}
