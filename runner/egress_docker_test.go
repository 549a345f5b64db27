package runner

import (
	"context"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/egress"
	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner/result"
)

// scopedOverride runs the test agent instead of the preset's CLI while keeping the
// run-scoped egress of the Containers it wraps. argv is per agent.
type scopedOverride struct {
	*Containers
	argv map[string][]string
}

func (s scopedOverride) Run(ctx context.Context, t *Task, logs io.Writer) (*Exit, error) {
	in := *t.Instance
	in.Argv = s.argv[in.Agent]
	cp := *t
	cp.Instance = &in
	return s.Containers.Run(ctx, &cp, logs)
}

// An allow-listed agent runs behind the run's egress proxy through the engine: a destination
// off its list is refused and shows up in the job's result, the model key stays outside the
// container (a placeholder stands in), and the proxy and its networks go with the run.
func TestAllowListedAgentsRunBehindTheEgressProxy(t *testing.T) {
	t.Parallel()
	r := newDockerRig(t)
	cli := dockertest.Client(t)
	exe := dockertest.BuildRunner(t)
	const key = "sk-ant-real-key-never-in-the-sandbox"
	r.eng.Sandbox = scopedOverride{
		Containers: &Containers{Sandbox: r.sb, Egress: &Egress{Client: cli, Executable: exe}},
		argv: map[string][]string{
			"review": {"/testagent", "env", "fetch", "http://not-allowed.example:80/", "dial", "192.0.2.1:80", "output", "ran=yes",
				"print", `{"type":"result","subtype":"success","is_error":false,"result":"Reviewed.","total_cost_usd":0.0123,"num_turns":2}`},
			// Codex takes its base URL only as a flag, which the runner puts in before `--`.
			"second-opinion": {"/testagent", "env", "print", `{"type":"turn.completed","usage":{"input_tokens":1,"output_tokens":1}}`, "--", "the prompt"},
		},
	}
	p := routine(t, `secrets: [ANTHROPIC_API_KEY, OPENAI_API_KEY]
defaults: {image: agentrunner/testagent:dev, timeout: 2m}
agents:
  review:
    uses: claude-code
    prompt: review
    network: {allow: ["api.anthropic.com:443"]}
  second-opinion:
    uses: codex
    prompt: review too
    network: {allow: ["api.openai.com:443"]}
`, r.sha)
	res, err := r.eng.Run(t.Context(), &reporters.RunInfo{ID: r.runID, Repo: "o/r", Plan: p},
		RunOptions{Dir: t.TempDir(), Secrets: map[string]string{"ANTHROPIC_API_KEY": key, "OPENAI_API_KEY": "sk-openai-real"}})
	if err != nil {
		t.Fatal(err)
	}
	j := jobOf(t, res, "review")
	if j.Outcome != result.Success {
		t.Fatalf("review: %s %s\n%s", j.Outcome, j.Error, j.LogTail)
	}
	if j.Usage.CostUSD != 0.0123 || j.Usage.Turns != 2 || j.Final != "Reviewed." {
		t.Errorf("the preset's result was not read: usage %+v, final %q", j.Usage, j.Final)
	}
	// The proxy refused one destination; the other bypassed the proxy and had no route.
	if len(j.Blocked) != 2 || !strings.Contains(j.Blocked[0], "not-allowed.example:80") ||
		j.Blocked[1] != "192.0.2.1:80 (direct connection without the proxy: the network has no route out)" {
		t.Errorf("blocked = %q, want not-allowed.example:80, then the direct 192.0.2.1:80", j.Blocked)
	}
	if !strings.Contains(res.Report, "### Network") || !strings.Contains(res.Report, "not-allowed.example:80") ||
		!strings.Contains(res.Report, "192.0.2.1:80 (direct connection") {
		t.Errorf("the run report does not list the refused destinations:\n%s", res.Report)
	}
	if strings.Contains(j.LogTail, key) {
		t.Error("the real model key reached the container")
	}
	for _, want := range []string{"HTTPS_PROXY=", "ANTHROPIC_BASE_URL=", "ANTHROPIC_API_KEY=" + egress.Placeholder} {
		if !strings.Contains(j.LogTail, want) {
			t.Errorf("the agent's environment lacks %s:\n%s", want, j.LogTail)
		}
	}
	if !strings.Contains(j.LogTail, "DIAL 192.0.2.1:80 => error") {
		t.Errorf("the direct connection should fail:\n%s", j.LogTail)
	}
	if !strings.Contains(j.LogTail, "FETCH http://not-allowed.example:80/ => 403") {
		t.Errorf("the fetch should be refused by the proxy with 403:\n%s", j.LogTail)
	}
	codex := jobOf(t, res, "second-opinion")
	if codex.Outcome != result.Success {
		t.Fatalf("second-opinion: %s %s\n%s", codex.Outcome, codex.Error, codex.LogTail)
	}
	if !regexp.MustCompile(`FLAG -c openai_base_url="http://[0-9.]+:[0-9]+/[^/"]+/openai"`).MatchString(codex.LogTail) {
		t.Errorf("codex was not pointed at the proxy's key endpoint by its flag:\n%s", codex.LogTail)
	}
	if !strings.Contains(codex.LogTail, "OPENAI_API_KEY="+egress.Placeholder) || strings.Contains(codex.LogTail, "sk-openai-real") {
		t.Errorf("codex should see only the placeholder key:\n%s", codex.LogTail)
	}
	// dockertest.RunID's cleanup fails the test if the proxy or a network is left.
}
