package carry

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/internal/nettest"
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

// The workspace's container lets the agent start only once the canary cannot be reached: at once
// when it is not, never (an error) while it stays reachable.
func TestTheAgentWaitsForItsNetworkPolicy(t *testing.T) {
	ln := nettest.AcceptAll(t, "127.0.0.1:0")
	reachable := ln.Addr().String()
	err := waitConfined(t.Context(), reachable, 50*time.Millisecond, 300*time.Millisecond)
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

// markersIn points the pod's markers into a directory of the test's own.
func markersIn(t *testing.T) string {
	dir := t.TempDir()
	r, f, s, w, p := readyMarker, failedMarker, startedMarker, hookWait, markPoll
	readyMarker, failedMarker, startedMarker = filepath.Join(dir, "ready"), filepath.Join(dir, "failed"), filepath.Join(dir, "started")
	hookWait, markPoll = 5*time.Second, time.Millisecond
	t.Cleanup(func() { readyMarker, failedMarker, startedMarker, hookWait, markPoll = r, f, s, w, p })
	return dir
}

// The first container's postStart hook holds up the agent's container until the workspace is
// filled, and says it saw so (the filling process may then end); it fails when filling failed
// and when nothing comes within its bound.
func TestTheHookHoldsTheAgentUntilTheWorkspaceIsFilled(t *testing.T) {
	markersIn(t)
	done := make(chan int, 1)
	go func() { done <- WaitMain(nil) }()
	select {
	case code := <-done:
		t.Fatalf("the hook returned %d before the workspace was filled", code)
	case <-time.After(100 * time.Millisecond):
	}
	if err := mark(readyMarker, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("the hook returned %d once the workspace was filled, want 0", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the hook did not return once the workspace was filled")
	}
	if !exists(startedMarker) {
		t.Error("the hook did not say it saw the workspace filled")
	}

	markersIn(t)
	if err := mark(failedMarker, "the pod still reaches 10.0.0.1:443"); err != nil {
		t.Fatal(err)
	}
	if code := WaitMain(nil); code != 1 {
		t.Errorf("the hook returned %d when filling failed, want 1", code)
	}

	markersIn(t)
	hookWait = 50 * time.Millisecond
	if code := WaitMain(nil); code != 1 {
		t.Errorf("the hook returned %d when nothing came, want 1", code)
	}
}

// The kubelet starts the agent's container even when the hook failed: the agent's side then
// refuses to run the agent (the workspace was not filled), as it does while the pod still
// reaches the policy's canary (its network policy is not in force yet, or never will be).
func TestTheAgentStartsOnlyFilledAndConfined(t *testing.T) {
	dir := markersIn(t)
	w := retryWindow
	retryWindow = 100 * time.Millisecond // no exchange to hand the workspace back to
	t.Cleanup(func() { retryWindow = w })
	t.Setenv(EnvURL, "http://127.0.0.1:1")
	t.Setenv(EnvToken, "t")
	ran := filepath.Join(dir, "ran")
	if code := AgentMain([]string{"--", "sh", "-c", "touch " + ran}); code != 125 {
		t.Errorf("exit %d without the ready marker, want 125", code)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Fatal("the agent ran in a pod whose workspace was not filled")
	}

	// Filled, but the pod still reaches the canary: its network policy is not in force.
	if err := mark(readyMarker, ""); err != nil {
		t.Fatal(err)
	}
	ln := nettest.AcceptAll(t, "127.0.0.1:0")
	limit := gateLimit
	gateLimit = 300 * time.Millisecond
	t.Cleanup(func() { gateLimit = limit })
	t.Setenv(EnvGate, ln.Addr().String())
	if code := AgentMain([]string{"--", "sh", "-c", "touch " + ran}); code != 125 {
		t.Errorf("exit %d while the network is open, want 125", code)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Fatal("the agent ran before its network policy was in force")
	}
	ln.Close()
	if code := AgentMain([]string{"--", "sh", "-c", "touch " + ran}); code != 0 {
		t.Errorf("exit %d once the policy is in force, want the agent's 0", code)
	}
	if _, err := os.Stat(ran); err != nil {
		t.Error("the agent did not run once its workspace was filled and its policy in force")
	}
}

// Filling the workspace fails loudly and leaves why for the hook: the agent never starts.
func TestAFailedFillIsMarkedForTheHook(t *testing.T) {
	markersIn(t)
	w := retryWindow
	retryWindow = 100 * time.Millisecond
	t.Cleanup(func() { retryWindow = w })
	t.Setenv(EnvURL, "http://127.0.0.1:1")
	t.Setenv(EnvToken, "t")
	t.Setenv(EnvGate, "")
	if code := FetchMain(nil); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	why, err := os.ReadFile(failedMarker)
	if err != nil || !strings.Contains(string(why), "fetch the workspace") {
		t.Errorf("failed marker %q (%v), want the fetch's error", why, err)
	}
	if _, err := os.Stat(readyMarker); err == nil {
		t.Error("marked ready after a failed fetch")
	}
}

// An agent image that carries the runner makes the pod one container: its agent's side fills
// the workspace itself (beside the policy's gate), runs the agent on it and hands the trees
// back; when the workspace cannot be had, the agent never runs.
func TestTheAgentsSideFillsTheWorkspaceItselfWithFetch(t *testing.T) {
	markersIn(t)
	src, pod := map[string]string{"workspace": t.TempDir(), "out": t.TempDir()}, map[string]string{"workspace": t.TempDir(), "out": t.TempDir()}
	back := map[string]string{"workspace": t.TempDir(), "out": t.TempDir()}
	if err := os.WriteFile(filepath.Join(src["workspace"], "README.md"), []byte("from the daemon\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	trees := podTrees
	podTrees = pod
	t.Cleanup(func() { podTrees = trees })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		switch r.URL.Path {
		case WorkspaceRoute:
			_ = WriteTrees(w, src, Limits{Bytes: 1 << 20, Entries: 100})
		case ChangesRoute:
			if err := ReadTrees(r.Body, back, Limits{Bytes: 1 << 20, Entries: 100}); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	t.Setenv(EnvURL, srv.URL)
	t.Setenv(EnvToken, "tok")
	t.Setenv(EnvGate, "")
	script := "grep -q 'from the daemon' " + filepath.Join(pod["workspace"], "README.md") + " && echo made > " + filepath.Join(pod["workspace"], "new.txt")
	if code := AgentMain([]string{FetchFlag, "--", "sh", "-c", script}); code != 0 {
		t.Fatalf("exit %d, want the agent's 0 (it found the daemon's workspace)", code)
	}
	if got, _ := os.ReadFile(filepath.Join(back["workspace"], "new.txt")); string(got) != "made\n" {
		t.Errorf("handed back new.txt = %q", got)
	}

	w := retryWindow
	retryWindow = 100 * time.Millisecond
	t.Cleanup(func() { retryWindow = w })
	t.Setenv(EnvToken, "wrong")
	ran := filepath.Join(t.TempDir(), "ran")
	if code := AgentMain([]string{FetchFlag, "--", "sh", "-c", "touch " + ran}); code != 125 {
		t.Errorf("exit %d when the workspace could not be fetched, want 125", code)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("the agent ran on a workspace that was never filled")
	}
}
