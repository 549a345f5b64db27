package egress

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/internal/dockertest"
)

// A remote connector is reached through the run's proxy: the agent's URL points at the
// proxy's endpoint for it, the proxy adds the connector's credential (the server refuses
// requests without it), and a tool outside the allow list is refused before the server sees
// the call. The agent holds no trace of the credential.
func TestARemoteConnectorIsReachedThroughTheProxyWithItsCredentialAddedOutside(t *testing.T) {
	cli := dockertest.Client(t)
	exe, upImg := testBinaries(t)
	dockertest.TestAgentImage(t)
	runID := dockertest.RunID(t)
	ctx := t.Context()
	upName := "agentrunner-" + runID + "-upstream"
	const secret = "trk-secret"
	eg := startEgress(t, cli, RunSpec{RunID: runID, Executable: exe, TestAllowOutside: true,
		Connectors: []Connector{{Name: "tracker", URL: "http://" + upName + ":80/mcp", Secret: secret, Tools: []string{"echo"}}}})
	_, outside := eg.Networks()
	startUpstream(t, cli, upImg, runID, upName, outside)
	if _, err := eg.AgentConfig(ctx, Agent{JobID: "x", Connectors: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), "no remote connector nope") {
		t.Errorf("an unknown connector: %v", err)
	}
	cfg, err := eg.AgentConfig(ctx, Agent{JobID: "triage", Connectors: []string{"tracker"}})
	if err != nil {
		t.Fatal(err)
	}
	url := cfg.MCP["tracker"]
	if !strings.HasPrefix(url, "http://"+eg.ProxyIP()+":8081/") || !strings.HasSuffix(url, "/mcp-tracker") {
		t.Fatalf("connector URL %q, want the proxy's key endpoint for it", url)
	}
	cfg.Env["TRACKER_URL"] = url
	// Without a credential the agent cannot use the server directly: it has no route to it.
	out := runAgent(t, cli, runID, "triage", nil, cfg,
		"mcp-call", "$TRACKER_URL", "echo", `{"text":"hi"}`,
		"mcp-call", "$TRACKER_URL", "wipe", `{}`,
		"fetch", "http://"+upName+":80/mcp",
		"scan", xorHex(secret))
	// The proxy does not rewrite the server's tool list; it refuses the call.
	if !strings.Contains(out, "MCP $TRACKER_URL tools: echo,wipe") {
		t.Errorf("the server's tools were not listed through the proxy:\n%s", out)
	}
	if !strings.Contains(out, "MCP $TRACKER_URL echo => tracker: hi") {
		t.Errorf("the allowed tool did not answer through the proxy:\n%s", out)
	}
	if !strings.Contains(out, `MCP $TRACKER_URL wipe => error:`) || !strings.Contains(out, `tool "wipe" is not in the allow list of connector mcp-tracker (echo)`) {
		t.Errorf("the tool outside the allow list was not refused by the proxy:\n%s", out)
	}
	if got := resultOf(t, out, "FETCH", "http://"+upName+":80/mcp"); !strings.HasPrefix(got, "403 ") {
		t.Errorf("the server directly, off the agent's allow list => %q, want 403 from the proxy", got)
	}
	if !strings.Contains(out, "SCAN clean") {
		t.Errorf("the connector's credential is visible in the agent container:\n%s", out)
	}
	up := containerLogs(t, cli, upName)
	if strings.Contains(up, "WIPE RAN") {
		t.Errorf("the refused tool ran on the server:\n%s", up)
	}
	if !strings.Contains(up, "SEEN /mcp x-api-key= authorization=Bearer "+secret) {
		t.Errorf("the server never saw the credential the proxy adds:\n%s", up)
	}
}

// xorHex is the scan step's argument for secret: XORed with 0x5a and hex-encoded, so the
// agent's argv never holds the secret itself.
func xorHex(secret string) string {
	b := []byte(secret)
	for i := range b {
		b[i] ^= 0x5a
	}
	return hex.EncodeToString(b)
}
