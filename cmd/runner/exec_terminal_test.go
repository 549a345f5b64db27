package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/internal/dockertest"
)

// timedWriter remembers when each piece of output arrived.
type timedWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	firsts map[string]time.Time
	watch  []string
}

func (w *timedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for _, s := range w.watch {
		if _, seen := w.firsts[s]; !seen && strings.Contains(w.buf.String(), s) {
			w.firsts[s] = time.Now()
		}
	}
	return len(p), nil
}

// TestExecStreamsAgentOutputAsItComes: with --progress plain every line an agent prints
// appears prefixed with its job, while the agent still runs.
func TestExecStreamsAgentOutputAsItComes(t *testing.T) {
	dockertest.Client(t)
	dockertest.TestAgentImage(t)
	repo := gitRepo(t, map[string]string{
		".agents/talk.yaml": "on: push\ndefaults: {image: agentrunner/testagent:dev, timeout: 2m}\nagents:\n" +
			"  talk: {command: [\"/testagent\", \"tick\", \"3\", \"200ms\", \"print\", \"first\", \"sleep\", \"2s\", \"print\", \"last\"]}\n",
	})
	chdir(t, repo)
	w := &timedWriter{firsts: map[string]time.Time{}, watch: []string{"talk | first"}}
	var errOut bytes.Buffer
	code := run(t.Context(), []string{"exec", "--progress", "plain"}, nil, w, &errOut)
	done := time.Now()
	out := w.buf.String()
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut.String())
	}
	if !strings.Contains(out, "talk | tick 1\ntalk | tick 2\ntalk | tick 3\ntalk | first\ntalk | last\n") {
		t.Errorf("the agent's lines are not streamed prefixed with its job:\n%s", out)
	}
	first, ok := w.firsts["talk | first"]
	if !ok {
		t.Errorf("the line %q never reached the terminal", "talk | first")
	} else if done.Sub(first) < 1500*time.Millisecond {
		t.Errorf("the line printed 2s before the agent ended reached the terminal only %s before the run ended", done.Sub(first))
	}
}

// TestExecShowsTheLastTwentyLinesOfAFailedAgent: a failure ends with the last 20 lines of
// the agent's log, not more.
func TestExecShowsTheLastTwentyLinesOfAFailedAgent(t *testing.T) {
	dockertest.Client(t)
	dockertest.TestAgentImage(t)
	var cmd []string
	for i := 1; i <= 30; i++ {
		cmd = append(cmd, `"print"`, fmt.Sprintf(`"line %d"`, i))
	}
	repo := gitRepo(t, map[string]string{
		".agents/bad.yaml": "on: push\ndefaults: {image: agentrunner/testagent:dev, timeout: 1m}\nagents:\n" +
			"  boom: {command: [\"/testagent\", " + strings.Join(cmd, ", ") + ", \"exit\", \"3\"]}\n",
	})
	chdir(t, repo)
	for _, progress := range []string{"plain", "tty"} {
		code, out, errOut := runCLI(t, "exec", "--progress", progress)
		if code != 1 {
			t.Fatalf("--progress %s: exit %d, want 1\n%s\n%s", progress, code, out, errOut)
		}
		i := strings.Index(out, "boom failed; the last 20 lines of ")
		if i < 0 {
			t.Fatalf("--progress %s: no log tail for boom:\n%s", progress, out)
		}
		tail := out[i:]
		tail = tail[strings.Index(tail, "\n")+1:]
		var want strings.Builder
		for n := 11; n <= 30; n++ {
			fmt.Fprintf(&want, "  | line %d\n", n)
		}
		if !strings.HasPrefix(tail, want.String()+"\n") {
			t.Errorf("--progress %s: the tail is not exactly lines 11-30:\n%s", progress, tail)
		}
	}
}

// TestExecEscapesWhatAgentsControl: an agent that prints an OSC 52 clipboard write and a
// screen clear, and agents whose conflicting file has an ESC in its name, reach the terminal
// only as visible escapes.
func TestExecEscapesWhatAgentsControl(t *testing.T) {
	dockertest.Client(t)
	dockertest.TestAgentImage(t)
	repo := gitRepo(t, map[string]string{
		".agents/evil.yaml": `on: push
defaults: {image: agentrunner/testagent:dev, timeout: 1m}
agents:
  loud: {command: ["/testagent", "printq", '"\x1b]52;c;aGk=\a\x1b[2J"', "exit", "1"]}
  one: {changes: keep, command: ["/testagent", "write", "e\e[2Jvil.txt=one\n"]}
  two: {changes: keep, command: ["/testagent", "write", "e\e[2Jvil.txt=two\n"]}
`,
	})
	chdir(t, repo)
	for _, progress := range []string{"plain", "tty"} {
		code, out, errOut := runCLI(t, "exec", "--progress", progress)
		if code != 1 {
			t.Fatalf("--progress %s: exit %d, want 1\n%s\n%s", progress, code, out, errOut)
		}
		visible := out
		if progress == "tty" {
			// The live view's own cursor movements are the only escapes allowed.
			visible = strings.NewReplacer("\x1b[2K", "", "\x1b[3A", "").Replace(out)
		}
		for _, raw := range []string{"\x1b", "\x07", "\x9b"} {
			if strings.Contains(visible, raw) {
				t.Errorf("--progress %s: the terminal received %q raw:\n%q", progress, raw, visible)
			}
		}
		for _, want := range []string{`\x1b]52;c;aGk=\x07\x1b[2J`, `conflict: two's changes to e\x1b[2Jvil.txt were left out`} {
			if !strings.Contains(out, want) {
				t.Errorf("--progress %s: output lacks %q:\n%s", progress, want, out)
			}
		}
	}
}
