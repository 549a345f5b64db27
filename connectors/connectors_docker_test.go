package connectors

import (
	"context"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/network"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/sandbox"
)

// runNetwork creates an internal network labelled with the run, as the run's egress would.
func runNetwork(t *testing.T, runID string) string {
	t.Helper()
	cli := dockertest.Client(t)
	name := "agentrunner-" + runID + "-int"
	if _, err := cli.NetworkCreate(t.Context(), name, network.CreateOptions{Driver: "bridge", Internal: true,
		Labels: map[string]string{sandbox.LabelRun: runID}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.NetworkRemove(context.Background(), name) })
	return name
}

// The connector's secret reaches the sidecar over its standard input only: the container's
// configuration (what `docker inspect` shows anyone with the socket) has no trace of it. A
// crashed run's sidecar is swept by the sandbox's reaper like its agents.
func TestASidecarsSecretIsNotInItsConfigurationAndTheReaperSweepsIt(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.TestAgentImage(t)
	exe := dockertest.BuildRunner(t)
	runID := dockertest.RunID(t)
	net := runNetwork(t, runID)
	const secret = "sidecar-secret-only-over-stdin"
	set, err := Start(t.Context(), cli, Spec{RunID: runID, Network: net, Executable: exe},
		[]Local{{Name: "things", Image: img, Command: []string{"/testagent", "mcp-server"},
			Env: map[string]string{"CONNECTOR_SECRET": secret}, Tools: []string{"echo"}}})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	u := set.URL("things")
	if !strings.HasPrefix(u, "http://"+set.IP("things")+":8080/") || !strings.HasSuffix(u, "/mcp") || set.URL("other") != "" {
		t.Errorf("URL = %q", u)
	}
	info, err := cli.ContainerInspect(t.Context(), "agentrunner-"+runID+"-mcp-things")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(info.Config.Env, "\n"), secret) || strings.Contains(strings.Join(info.Config.Cmd, " "), secret) {
		t.Errorf("the secret is in the sidecar's configuration: env %q cmd %q", info.Config.Env, info.Config.Cmd)
	}
	hc := info.HostConfig
	if !hc.ReadonlyRootfs || len(hc.CapDrop) != 1 || hc.CapDrop[0] != "ALL" || info.Config.User != sandbox.DefaultUser {
		t.Errorf("the sidecar is not hardened: read-only %v, cap-drop %v, user %q", hc.ReadonlyRootfs, hc.CapDrop, info.Config.User)
	}
	// A crash: nobody calls Close. The reaper removes the sidecar (and the run's network).
	removed, err := sandbox.NewDocker(cli, sandbox.Options{}).Reap(t.Context(), func(l sandbox.Leftover) bool { return l.RunID == runID })
	if err != nil {
		t.Fatalf("Reap: %v", err)
	}
	if len(removed) != 2 {
		t.Errorf("Reap removed %v, want the sidecar and the network", removed)
	}
	if err := set.Close(t.Context()); err != nil {
		t.Errorf("Close after Reap: %v", err)
	}
}

// A server that does not start is an error that names the connector and its program, and
// leaves no container behind.
func TestAServerThatDoesNotStartFailsTheSetCleanly(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.TestAgentImage(t)
	exe := dockertest.BuildRunner(t)
	runID := dockertest.RunID(t)
	net := runNetwork(t, runID)
	_, err := Start(t.Context(), cli, Spec{RunID: runID, Network: net, Executable: exe},
		[]Local{{Name: "broken", Image: img, Command: []string{"/no/such/server"}}})
	if err == nil || !strings.Contains(err.Error(), "connector broken") || !strings.Contains(err.Error(), "/no/such/server") {
		t.Fatalf("Start = %v, want an error naming the connector and its command", err)
	}
	// dockertest.RunID's cleanup fails the test if a container of the run is left.
}
