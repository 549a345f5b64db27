package runner

import (
	"slices"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/reporters"
)

func TestLineWriterSplitsAStreamIntoLines(t *testing.T) {
	t.Parallel()
	var got []string
	w := newLineWriter(func(l string) { got = append(got, l) })
	for _, chunk := range []string{"tick 1\nti", "ck 2\r\n", "\n", "no newline", " at the end"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"tick 1", "tick 2", ""}; !slices.Equal(got, want) {
		t.Fatalf("before Flush: %q, want %q", got, want)
	}
	w.Flush()
	w.Flush() // nothing left: no empty line
	if want := []string{"tick 1", "tick 2", "", "no newline at the end"}; !slices.Equal(got, want) {
		t.Errorf("after Flush: %q, want %q", got, want)
	}

	got = nil
	long := strings.Repeat("x", 2*maxLogLine+5)
	_, _ = w.Write([]byte(long))
	if len(got) != 2 || len(got[0]) != maxLogLine {
		t.Fatalf("a line without end is passed on in pieces of %d bytes, got %d pieces", maxLogLine, len(got))
	}
	w.Flush()
	if strings.Join(got, "") != long {
		t.Errorf("the pieces do not add up to the line")
	}
}

// following is a recorder that asks for the jobs' log lines.
type following struct{ recorder }

func (*following) FollowLogs() bool { return true }

func TestJobLogLinesReachOnlyReportersThatFollowLogs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	follow := &following{}
	h.eng.Reporter = reporters.Multi{h.rec, follow}
	p := routine(t, `
agents:
  talk:
    command: ["/testagent", "print", "one", "print", "two", "print", "three"]
`, "")
	h.run(t, t.Context(), p, nil)
	if slices.Contains(h.rec.kinds(), reporters.JobLog) {
		t.Errorf("a reporter that does not follow logs got job_log updates: %v", h.rec.kinds())
	}
	var lines []string
	finished := false
	for _, u := range follow.updates {
		switch u.Kind {
		case reporters.JobLog:
			if finished {
				t.Errorf("line %q after the job finished", u.Line)
			}
			if u.Instance == nil || u.Instance.ID != "talk" {
				t.Errorf("line %q without its job", u.Line)
			}
			lines = append(lines, u.Line)
		case reporters.JobFinished:
			finished = true
		}
	}
	if want := []string{"one", "two", "three"}; !slices.Equal(lines, want) {
		t.Errorf("lines = %q, want %q", lines, want)
	}
}
