package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner/result"
)

// A local connector runs as its own sidecar: the test agent's image, serving MCP on stdio,
// behind the runner's bridge. Agents reach it through $AGENT_MCP_CONFIG (and claude through
// its --mcp-config flag), list and call its allow-listed tools, are refused the tool outside
// the list by the bridge, and find no trace of the connector's secret in their container,
// while the sidecar has it. The sidecar goes with the run.
func TestALocalConnectorRunsAsASidecarBehindTheBridge(t *testing.T) {
	t.Parallel()
	r := newDockerRig(t)
	cli := dockertest.Client(t)
	exe := dockertest.BuildRunner(t)
	const secret = "connector-secret-never-in-an-agent"
	sum := sha256.Sum256([]byte(secret))
	digest := hex.EncodeToString(sum[:])[:12]
	scan := []byte(secret)
	for i := range scan {
		scan[i] ^= 0x5a
	}
	r.eng.Sandbox = scopedOverride{
		Containers: &Containers{Sandbox: r.sb, Egress: &Egress{Client: cli, Executable: exe}},
		argv: map[string][]string{
			"triage": {"/testagent", "env",
				"mcp-call", "things", "echo", `{"text":"hello from the agent"}`,
				"mcp-call", "things", "secret_digest", `{}`,
				"mcp-call", "things", "wipe", `{}`,
				"scan", hex.EncodeToString(scan)},
			// The preset's flag is put in before "--", like the real CLI would get it.
			"review": {"/testagent", "mcp-call", "things", "echo", `{"text":"claude too"}`,
				"print", `{"type":"result","subtype":"success","is_error":false,"result":"ok","num_turns":1}`, "--", "the prompt"},
		},
	}
	p := routine(t, `secrets: [CONNECTOR_SECRET]
defaults: {image: agentrunner/testagent:dev, timeout: 2m}
connectors:
  things:
    image: agentrunner/testagent:dev
    command: [/testagent, mcp-server]
    secrets: [CONNECTOR_SECRET]
    tools: [echo, secret_digest]
agents:
  triage:
    command: [placeholder]
  review:
    uses: claude-code
    prompt: review
    needs: [triage]
`, r.sha)
	res, err := r.eng.Run(t.Context(), &reporters.RunInfo{ID: r.runID, Repo: "o/r", Plan: p},
		RunOptions{Dir: t.TempDir(), Secrets: map[string]string{"CONNECTOR_SECRET": secret}})
	if err != nil {
		t.Fatal(err)
	}
	j := jobOf(t, res, "triage")
	if j.Outcome != result.Success {
		t.Fatalf("triage: %s %s\n%s", j.Outcome, j.Error, j.LogTail)
	}
	out := func(k string) string { s, _ := j.Outputs[k].(string); return s }
	if got := out("mcp_things_tools"); got != "tools: echo,secret_digest" {
		t.Errorf("tools listed through the bridge = %q, want only the allow list\n%s", got, j.LogTail)
	}
	if got := out("mcp_things_echo"); got != "echo => hello from the agent" {
		t.Errorf("echo = %q\n%s", got, j.LogTail)
	}
	if got := out("mcp_things_secret_digest"); got != "secret_digest => "+digest {
		t.Errorf("secret_digest = %q, want %s: the sidecar's server did not get the secret", got, digest)
	}
	if got := out("mcp_things_wipe"); !strings.Contains(got, `tool "wipe" is not in the allow list of connector things`) {
		t.Errorf("wipe = %q, want the bridge's refusal", got)
	}
	if !strings.Contains(j.LogTail, "SCAN clean") {
		t.Errorf("the connector's secret is visible in the agent's container:\n%s", j.LogTail)
	}
	if !strings.Contains(j.LogTail, "AGENT_MCP_CONFIG=/agent/out/mcp.json") || strings.Contains(j.LogTail, "CONNECTOR_SECRET=") {
		t.Errorf("the agent's environment should name the MCP config and hold no connector secret:\n%s", j.LogTail)
	}
	rv := jobOf(t, res, "review")
	if rv.Outcome != result.Success || !strings.Contains(rv.LogTail, "FLAG --mcp-config /agent/out/mcp.json") ||
		!strings.Contains(rv.LogTail, "MCP things echo => claude too") {
		t.Errorf("review: %s %s, want claude's --mcp-config flag and a working call:\n%s", rv.Outcome, rv.Error, rv.LogTail)
	}
	// dockertest.RunID's cleanup fails the test if the sidecar, the proxy or a network is left.
}
