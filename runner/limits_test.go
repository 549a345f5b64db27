package runner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

func TestCappedLogKeepsHeadAndTail(t *testing.T) {
	t.Parallel()
	input := func(n int) []byte {
		var b bytes.Buffer
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "line %d\n", i)
		}
		return b.Bytes()[:n]
	}
	tests := []struct {
		name   string
		size   int
		writes []int // lengths of the writes, in order; the rest in one write
	}{
		{name: "under the limit", size: 900},
		{name: "exactly the limit", size: 1000},
		{name: "just over, in small writes", size: 1001, writes: []int{1, 7, 300, 499, 3}},
		{name: "far over, in small writes", size: 100000, writes: slices.Repeat([]int{33}, 3000)},
		{name: "one write far larger than the tail", size: 100000},
		{name: "a write straddling the head", size: 5000, writes: []int{400, 300}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := input(tc.size)
			var out bytes.Buffer
			c := newCappedLog(&out, 1000)
			rest := in
			for _, n := range tc.writes {
				if n > len(rest) {
					break
				}
				if k, err := c.Write(rest[:n]); k != n || err != nil {
					t.Fatalf("Write = %d, %v", k, err)
				}
				rest = rest[n:]
			}
			if _, err := c.Write(rest); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			want := string(in)
			if len(in) > 1000 {
				want = string(in[:500]) +
					fmt.Sprintf("\n[… %d bytes cut by agentrunner: the log exceeded 1000; its first and last 500 are kept …]\n", len(in)-1000) +
					string(in[len(in)-500:])
			}
			if out.String() != want {
				t.Errorf("stored log:\n%q\nwant\n%q", out.String(), want)
			}
		})
	}
}

// diskLimited ends one agent's jobs as the Docker sandbox ends an agent over its disk limit.
type diskLimited struct {
	Sandbox
	agent string
}

func (d diskLimited) Run(ctx context.Context, t *Task, logs io.Writer) (*Exit, error) {
	if t.Instance.Agent != d.agent {
		return d.Sandbox.Run(ctx, t, logs)
	}
	return &Exit{Outcome: result.DiskLimit, ExitCode: 137, Error: "the agent wrote more than 20m into /workspace"}, nil
}

// A disk_limit job is a failure to expressions, dependents and the check run's conclusion.
func TestDiskLimitIsAFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.eng.Sandbox = diskLimited{Sandbox: h.sb, agent: "filler"}
	p := routine(t, `
agents:
  filler:
    command: ["/testagent", "print", "filling"]
  on-failure:
    needs: [filler]
    if: failure()
    command: ["/testagent", "print", "cleaning up"]
  on-success:
    needs: [filler]
    command: ["/testagent", "print", "going on"]
`, "")
	res := h.run(t, t.Context(), p, nil)
	j := jobOf(t, res, "filler")
	if j.Outcome != result.DiskLimit || !strings.Contains(j.Error, "more than 20m") {
		t.Errorf("filler = %s (%q), want disk_limit with the sandbox's explanation", j.Outcome, j.Error)
	}
	if a := agentOf(t, res, "filler"); a.Result != plan.ResultFailure || a.Counts["disk_limit"] != 1 {
		t.Errorf("filler agent = %s %v, want failure with one disk_limit", a.Result, a.Counts)
	}
	if got := agentOf(t, res, "on-failure").Result; got != plan.ResultSuccess {
		t.Errorf("on-failure = %s, want success: failure() holds after a disk limit", got)
	}
	if got := agentOf(t, res, "on-success").Result; got != plan.ResultSkipped {
		t.Errorf("on-success = %s, want skipped", got)
	}
	if res.Conclusion != result.ConclusionFailure {
		t.Errorf("conclusion = %s, want failure", res.Conclusion)
	}
}
