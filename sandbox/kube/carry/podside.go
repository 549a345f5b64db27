package carry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/agentrunner/agentrunner/sandbox"
)

// Package carry moves a job's workspace between the daemon and the agent's pod on Kubernetes,
// which share no disk: the trees as a tar stream both ends treat as hostile (archive.go), and
// the pod's side, run by the runner's hidden subcommands: FetchCommand in the pod's first
// container, WaitCommand as that container's postStart hook, AgentCommand in the agent's
// container, from the copy the first leaves there. The daemon's side is kube.Exchange.
//
// Why a hook and not an init container: the kubelet starts a pod's containers one after
// another in one pass, and a container's postStart hook holds up the next; an init container
// instead must be seen to exit, which the kubelet learns by relisting its runtime once a
// second — two relists, about two seconds, added to every agent's start.

// The commands, the routes of the exchange (the token in the Authorization header, never in a
// URL that logs could keep), the environment that names them, and where the runner's copy goes.
const (
	FetchCommand = "kube-fetch"
	WaitCommand  = "kube-wait"
	AgentCommand = "kube-agent"
	// FetchFlag makes AgentCommand fill the workspace itself (one-container pods, whose
	// agent image carries the runner).
	FetchFlag      = "--fetch"
	WorkspaceRoute = "/kube/v1/workspace" // GET: the trees
	ChangesRoute   = "/kube/v1/changes"   // PUT: the trees as the agent left them
	EnvURL         = "AGENTRUNNER_EXCHANGE_URL"
	EnvToken       = "AGENTRUNNER_EXCHANGE_TOKEN"
	// EnvGate, when set, makes the agent's side wait until the pod's NetworkPolicy is in
	// force — enforcement can lag a pod's start by seconds — before it starts the agent: it
	// holds the canary, an address (host:port) the policy cuts off, or GateService. It is the
	// agent's container that waits, not the workspace's hook: a policy controller learns the
	// pod's address from its status, which the kubelet publishes only after the hook returned.
	EnvGate = "AGENTRUNNER_POLICY_GATE"
	// GateService: the canary is the API server's Service (KUBERNETES_SERVICE_HOST and _PORT).
	GateService = "kubernetes-service"
	RunnerDir   = "/.agentrunner"
	RunnerPath  = RunnerDir + "/runner"
)

// The markers the pod's side leaves beside the runner's copy: the workspace is filled (ready)
// or could not be (failed, with why); the hook saw ready (started), so the fetching process may
// end without cutting its hook short. Variables for the tests.
var (
	readyMarker   = RunnerDir + "/ready"
	failedMarker  = RunnerDir + "/failed"
	startedMarker = RunnerDir + "/started"
)

// How long each side waits for the other: the hook for the workspace (the fetch of a large
// one, from a daemon that may be restarting), the fetching process for its hook.
var (
	hookWait  = 30 * time.Minute
	ackWait   = 2 * time.Minute
	markPoll  = 10 * time.Millisecond
	ackLinger = 500 * time.Millisecond
)

// podTrees are the trees as the pod mounts them.
var podTrees = map[string]string{"workspace": sandbox.WorkspacePath, "out": sandbox.OutputPath}

// podLimits bound what a pod accepts and sends (the emptyDirs' sizeLimits bound it too).
var podLimits = Limits{Bytes: 64 << 30, Entries: 2_000_000}

// FetchMain fills the workspace and the output directory from the exchange and copies the
// runner's executable where the agent's container runs it from, marks the pod ready (or
// failed), and waits for its hook to have seen it; it returns the exit code.
func FetchMain(args []string) int {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	if os.Getenv(EnvURL) == "" || os.Getenv(EnvToken) == "" {
		fmt.Fprintf(os.Stderr, "agentrunner: %s runs inside an agent's pod on Kubernetes, where %s and %s are set; it is not meant to be run by hand\n",
			FetchCommand, EnvURL, EnvToken)
		return 2
	}
	// Side by side: the agent's start waits for both.
	copied := make(chan error, 1)
	go func() { copied <- copySelf(RunnerPath) }()
	err := errors.Join(Fetch(ctx, os.Getenv(EnvURL), os.Getenv(EnvToken), podTrees), <-copied)
	if err == nil {
		err = mark(readyMarker, "")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentrunner: fill the workspace:", err)
		_ = mark(failedMarker, err.Error())
		return 1
	}
	// The hook runs inside this container: ending before it saw the marker would kill it.
	if pollUntil(ctx, ackWait, func() bool { return exists(startedMarker) }) == nil {
		time.Sleep(ackLinger)
	}
	return 0
}

// WaitMain is the first container's postStart hook: it returns once the workspace is filled,
// which is when the kubelet goes on to start the agent's container; it fails if filling it
// failed. The agent's side checks the marker again (AgentMain): the kubelet starts the next
// container even after a hook failed.
func WaitMain(args []string) int {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	if err := pollUntil(ctx, hookWait, func() bool { return exists(readyMarker) || exists(failedMarker) }); err != nil {
		fmt.Fprintf(os.Stderr, "agentrunner: the workspace was not filled within %s\n", hookWait)
		return 1
	}
	if b, err := os.ReadFile(failedMarker); err == nil {
		fmt.Fprintf(os.Stderr, "agentrunner: the workspace was not filled: %s\n", b)
		return 1
	}
	if err := mark(startedMarker, ""); err != nil {
		fmt.Fprintln(os.Stderr, "agentrunner:", err)
	}
	return 0
}

// mark writes a marker whole: written aside, then renamed into place.
func mark(path, text string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// pollUntil checks done every markPoll until it holds, for at most limit.
func pollUntil(ctx context.Context, limit time.Duration, done func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(markPoll):
		}
	}
	return nil
}

// Fetch fills trees (prefix → directory) from the exchange at base.
func Fetch(ctx context.Context, base, token string, trees map[string]string) error {
	return retrying(ctx, "fetch the workspace", func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+WorkspaceRoute, nil)
		if err != nil {
			return false, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := exchangeClient.Do(req)
		if err != nil {
			return true, err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
			return retryable(res.StatusCode), fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(msg)))
		}
		return false, ReadTrees(res.Body, trees, podLimits)
	})
}

// exchangeClient talks to the exchange directly, never through a proxy: an allow-listed
// agent's environment names its run's egress proxy, which would refuse the exchange (it is on
// no allow list) and which the agent's network policy lets it reach beside the exchange.
var exchangeClient = &http.Client{Transport: directTransport()}

func directTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return tr
}

// retryWindow is how long the pod's side keeps trying the exchange: long enough for a daemon
// to restart and take its job back, which makes its token known again.
var retryWindow = 2 * time.Minute

// retrying calls try until it succeeds, fails for good, or retryWindow passes.
func retrying(ctx context.Context, what string, try func() (again bool, err error)) error {
	deadline := time.Now().Add(retryWindow)
	wait := 200 * time.Millisecond
	for {
		again, err := try()
		if err == nil || !again {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: gave up after %s: %w", what, retryWindow, err)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// retryable: the exchange does not know the token yet (its daemon is starting again) or is
// busy; anything else will not change.
func retryable(status int) bool {
	return status == http.StatusUnauthorized || status == http.StatusServiceUnavailable || status == http.StatusBadGateway || status == http.StatusTooManyRequests
}

func copySelf(dst string) error {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return err
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	// Whole or not at all: the agent's container runs what is at dst.
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// canary is the address the gate names: its own, or the cluster's API server, whose service
// address the kubelet puts in every container's environment.
func canary(gate string) string {
	if gate != GateService && gate != "1" {
		return gate
	}
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return ""
	}
	return net.JoinHostPort(host, port)
}

// gatePoll is how often the gate tries the canary: the agent starts at most this long after its
// policy is in force. A try that gets no answer within gateDial counts as cut off: in a
// cluster's own network a reachable canary answers far sooner, and policies that drop rather
// than refuse cost this much once.
const (
	gatePoll = 100 * time.Millisecond
	gateDial = time.Second
)

// gateLimit is how long the agent's side waits for the policy (a variable for the tests).
var gateLimit = 2 * time.Minute

// waitConfined waits until addr can no longer be reached, the sign that the pod's network
// policy is enforced, trying every poll for at most limit. No canary: nothing to wait for.
func waitConfined(ctx context.Context, addr string, poll, limit time.Duration) error {
	if addr == "" {
		return nil
	}
	deadline := time.Now().Add(limit)
	for {
		conn, err := (&net.Dialer{Timeout: max(poll, gateDial)}).DialContext(ctx, "tcp", addr)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return nil
		}
		conn.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("the pod still reaches %s after %s: its NetworkPolicy is not enforced (does the cluster run a network policy controller?); the agent does not start unconfined", addr, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// AgentMain runs the agent (args after "--") once the workspace is filled and the pod's
// network policy is in force (EnvGate), passes SIGTERM on, and once the agent ended hands the
// trees back to the exchange; it exits with the agent's code (128+signal when killed), 125
// when the agent could not be started.
//
// With FetchFlag first (an agent image that carries the runner, so the pod is this one
// container) it fills the workspace itself before anything else, instead of finding it filled.
func AgentMain(args []string) int {
	fetch := len(args) > 0 && args[0] == FetchFlag
	if fetch {
		args = args[1:]
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "agentrunner: no agent command")
		return 2
	}
	if os.Getenv(EnvURL) == "" || os.Getenv(EnvToken) == "" {
		fmt.Fprintf(os.Stderr, "agentrunner: %s runs inside an agent's pod on Kubernetes, where %s and %s are set; it is not meant to be run by hand\n",
			AgentCommand, EnvURL, EnvToken)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	// The fetch and the policy's gate at once: the exchange is reachable before the policy is
	// in force and after.
	filled := make(chan error, 1)
	if fetch {
		go func() { filled <- Fetch(ctx, os.Getenv(EnvURL), os.Getenv(EnvToken), podTrees) }()
	} else if !exists(readyMarker) {
		// Not filled (the fetch failed, the hook gave up): the agent must not run.
		fmt.Fprintln(os.Stderr, "agentrunner: the workspace was not filled; the agent does not start")
		return 125
	} else {
		filled <- nil
	}
	if gate := os.Getenv(EnvGate); gate != "" {
		if err := waitConfined(ctx, canary(gate), gatePoll, gateLimit); err != nil {
			fmt.Fprintln(os.Stderr, "agentrunner:", err)
			return 125
		}
	}
	if err := <-filled; err != nil {
		fmt.Fprintln(os.Stderr, "agentrunner: the workspace was not filled; the agent does not start:", err)
		return 125
	}
	cancel()
	code := runAgent(args)
	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer hcancel()
	if err := HandBack(hctx, os.Getenv(EnvURL), os.Getenv(EnvToken), podTrees); err != nil {
		fmt.Fprintln(os.Stderr, "agentrunner: hand the workspace back:", err)
	}
	return code
}

func runAgent(argv []string) int {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "agentrunner: start the agent:", err)
		return 127
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return 1
}

// HandBack sends trees to the exchange at base. The trees are read again for each attempt.
func HandBack(ctx context.Context, base, token string, trees map[string]string) error {
	return retrying(ctx, "hand the workspace back", func() (bool, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(WriteTrees(pw, trees, podLimits)) }()
		defer pr.Close()
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+ChangesRoute, pr)
		if err != nil {
			return false, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/x-tar")
		res, err := exchangeClient.Do(req)
		if err != nil {
			return true, err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusNoContent {
			msg, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
			return retryable(res.StatusCode), fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(msg)))
		}
		return false, nil
	})
}
