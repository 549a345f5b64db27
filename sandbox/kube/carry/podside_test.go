package carry

import (
	"net"
	"strings"
	"testing"
	"time"
)

// The agent's container ends with the agent's own exit code, 128+signal when it was killed,
// and 127 when it cannot start: the pod's status then says what the agent did.
func TestTheAgentsExitCodeIsThePods(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want int
	}{
		{[]string{"sh", "-c", "exit 0"}, 0},
		{[]string{"sh", "-c", "exit 3"}, 3},
		{[]string{"sh", "-c", "kill -9 $$"}, 128 + 9},
		{[]string{"/no/such/agent"}, 127},
	} {
		if got := runAgent(tc.argv); got != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.argv, got, tc.want)
		}
	}
}

// The init container lets the agent start only once the canary cannot be reached: at once
// when it is not, never (an error) while it stays reachable.
func TestTheAgentWaitsForItsNetworkPolicy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	reachable := ln.Addr().String()
	err = waitConfined(t.Context(), reachable, 50*time.Millisecond, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "NetworkPolicy is not enforced") {
		t.Fatalf("while the canary answers: %v, want a refusal to start", err)
	}
	ln.Close()
	if err := waitConfined(t.Context(), reachable, 50*time.Millisecond, 300*time.Millisecond); err != nil {
		t.Fatalf("once the canary is cut off: %v", err)
	}
	if err := waitConfined(t.Context(), "", time.Second, time.Second); err != nil {
		t.Fatalf("no canary: %v", err)
	}
}

// The gate's canary is the address the daemon names, or the API server's Service from the
// environment the kubelet gives every container.
func TestTheGateNamesItsCanary(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	for gate, want := range map[string]string{GateService: "10.0.0.1:443", "1": "10.0.0.1:443", "10.231.1.1:9": "10.231.1.1:9"} {
		if got := canary(gate); got != want {
			t.Errorf("canary(%q) = %q, want %q", gate, got, want)
		}
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if got := canary(GateService); got != "" {
		t.Errorf("no service in the environment: canary %q, want none", got)
	}
}
