package egress

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/preset"
	"github.com/agentrunner/agentrunner/proxy"
	"github.com/agentrunner/agentrunner/sandbox"
)

var (
	buildOnce sync.Once
	runnerExe string
	buildErr  error
	buildDir  string
)

// testBinaries builds the runner (with the agentrunner_testonly tag, so the proxy accepts the
// test-only filter override) once per test binary, and the fake model API's image.
func testBinaries(t *testing.T) (exe, upstreamImage string) {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "egress-test-")
		if buildErr != nil {
			return
		}
		runnerExe = filepath.Join(buildDir, "runner")
		buildErr = goBuild(runnerExe, "github.com/agentrunner/agentrunner/cmd/runner", "-tags=agentrunner_testonly")
	})
	if buildErr != nil {
		t.Fatalf("build test binaries: %v", buildErr)
	}
	return runnerExe, dockertest.ModelAPIImage(t)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func goBuild(out, pkg string, flags ...string) error {
	args := append([]string{"build", "-trimpath", "-o", out}, flags...)
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// startUpstream runs the upstream test server on the run's outside network, named name.
func startUpstream(t *testing.T, cli client.APIClient, img, runID, name, netName string) string {
	t.Helper()
	ctx := t.Context()
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: img, Labels: map[string]string{LabelRun: runID}},
		&container.HostConfig{NetworkMode: container.NetworkMode(netName)}, nil, nil, name)
	if err != nil {
		t.Fatalf("create upstream: %v", err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	})
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start upstream: %v", err)
	}
	info, err := cli.ContainerInspect(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	return info.NetworkSettings.Networks[netName].IPAddress
}

func containerLogs(t *testing.T, cli client.APIClient, name string) string {
	t.Helper()
	rc, err := cli.ContainerLogs(t.Context(), name, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("logs of %s: %v", name, err)
	}
	defer rc.Close()
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, rc)
	return out.String()
}

// runAgent runs the test agent with argv in the hardened sandbox on the egress network.
func runAgent(t *testing.T, cli client.APIClient, runID, jobID string, allow []string, cfg *AgentConfig, argv ...string) string {
	t.Helper()
	sb := sandbox.NewDocker(cli, sandbox.Options{})
	spec := &sandbox.Spec{
		RunID: runID, JobID: jobID, Image: dockertest.TestAgentImage(t), PullPolicy: sandbox.PullNever,
		Argv:         append([]string{"/testagent"}, argv...),
		WorkspaceDir: t.TempDir(), OutputDir: t.TempDir(),
		Timeout: 2 * time.Minute,
		Network: sandbox.Network{Mode: sandbox.NetworkAllow, Allow: allow, DockerNetwork: cfg.Network, ProxyEnv: cfg.Env},
	}
	h, err := sb.Prepare(t.Context(), spec)
	if err != nil {
		t.Fatalf("prepare agent: %v", err)
	}
	defer sb.Destroy(context.Background(), h)
	var logs bytes.Buffer
	res, err := sb.Run(t.Context(), h, &logs)
	if err != nil {
		t.Fatalf("run agent: %v\n%s", err, logs.String())
	}
	if res.Outcome != sandbox.Success {
		t.Fatalf("agent outcome %s (exit %d):\n%s", res.Outcome, res.ExitCode, logs.String())
	}
	return logs.String()
}

// resultOf finds the line `<VERB> <arg> => …` and returns what follows the arrow.
func resultOf(t *testing.T, out, verb, arg string) string {
	t.Helper()
	prefix := verb + " " + arg + " => "
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return rest
		}
	}
	t.Fatalf("no %q line in agent output:\n%s", prefix, out)
	return ""
}

func TestEgressEnforcesAllowListAndInjectsKeys(t *testing.T) {
	cli := dockertest.Client(t)
	exe, upImg := testBinaries(t)
	dockertest.TestAgentImage(t)
	runID := dockertest.RunID(t)
	ctx := t.Context()

	const key = "sk-ant-test-REAL-KEY-0123456789abcdef"
	upName := "agentrunner-" + runID + "-upstream"
	anthropic := preset.API{Provider: preset.Anthropic, Upstream: "http://" + upName + ":80", KeyHeader: "x-api-key",
		KeyEnv: []string{"ANTHROPIC_API_KEY"}, BaseURLEnv: []string{"ANTHROPIC_BASE_URL"}}
	spec := RunSpec{
		RunID: runID, Executable: exe,
		Keys: []Key{{API: anthropic, Value: key}},
		// The upstream lives on the outside network, a private range; the name below is allowed
		// but resolves to a private address the override does not cover.
		TestAllowOutside: true,
		testOnly:         &proxy.TestOnly{Hosts: map[string][]string{"private-name.test": {"10.9.8.7"}}},
	}
	eg := startEgress(t, cli, spec)
	_, outside := eg.Networks()
	upIP := startUpstream(t, cli, upImg, runID, upName, outside)

	allow := []string{upName + ":80", upName + ":443", "169.254.169.254:80", "10.0.0.1:80", "private-name.test:80"}
	cfg, err := eg.AgentConfig(ctx, Agent{JobID: "probe", Allow: allow, APIs: []preset.API{anthropic}})
	if err != nil {
		t.Fatalf("AgentConfig: %v", err)
	}
	secretHex := make([]byte, len(key))
	for i := range key {
		secretHex[i] = key[i] ^ 0x5a
	}
	// A service on the host, listening on every address: the host is not a way out either.
	hostLn, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostLn.Close()
	var reachedHost atomic.Int32
	go func() {
		for {
			c, err := hostLn.Accept()
			if err != nil {
				return
			}
			reachedHost.Add(1)
			c.Close()
		}
	}()
	hostPort := hostLn.Addr().(*net.TCPAddr).Port
	var hostDials []string
	for _, a := range hostAddrs(t) {
		hostDials = append(hostDials, "dial", net.JoinHostPort(a, strconv.Itoa(hostPort)))
	}
	out := runAgent(t, cli, runID, "probe", allow, cfg, append(hostDials,
		"fetch", "http://"+upName+"/hello",
		"fetch", "https://"+upName+"/hello",
		"fetch", "http://not-allowed.example/",
		"fetch", "http://"+upIP+"/hello",
		"fetch", "http://169.254.169.254/latest/meta-data/",
		"fetch", "http://10.0.0.1/",
		"fetch", "http://private-name.test/",
		"fetch", "$ANTHROPIC_BASE_URL/v1/messages",
		"dial", upIP+":80",
		"resolve", upName,
		"resolve", "example.com",
		"scan", hex.EncodeToString(secretHex),
	)...)
	for i := 1; i < len(hostDials); i += 2 {
		if got := resultOf(t, out, "DIAL", hostDials[i]); !strings.HasPrefix(got, "error: ") {
			t.Errorf("DIAL %s (the host) => %q, want an error", hostDials[i], got)
		}
	}
	if n := reachedHost.Load(); n != 0 {
		t.Errorf("the agent reached a service on the host %d times", n)
	}

	for _, tc := range []struct{ verb, arg, want string }{
		{"FETCH", "http://" + upName + "/hello", "200 hello from upstream"},
		{"FETCH", "https://" + upName + "/hello", "200 hello from upstream"},
		{"FETCH", "http://not-allowed.example/", "403 "},
		{"FETCH", "http://" + upIP + "/hello", "403 "},
		{"FETCH", "http://169.254.169.254/latest/meta-data/", "403 "},
		{"FETCH", "http://10.0.0.1/", "403 "},
		{"FETCH", "http://private-name.test/", "403 "},
		{"FETCH", "$ANTHROPIC_BASE_URL/v1/messages", "200 ok"},
		{"DIAL", upIP + ":80", "error: "},
		{"RESOLVE", upName, "error: "},
		{"RESOLVE", "example.com", "error: "},
	} {
		if got := resultOf(t, out, tc.verb, tc.arg); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s %s => %q, want prefix %q", tc.verb, tc.arg, got, tc.want)
		}
	}
	if !strings.Contains(out, "SCAN clean") {
		t.Errorf("the key is visible inside the agent container:\n%s", out)
	}

	blocked, err := eg.Blocked(ctx, "probe")
	if err != nil {
		t.Fatalf("Blocked: %v", err)
	}
	joined := strings.Join(blocked, "\n")
	for _, want := range []string{
		"not-allowed.example:80 (not on the allow list)",
		upIP + ":80 (not on the allow list)",
		"169.254.169.254:80 (link-local address (cloud metadata) 169.254.169.254)",
		"10.0.0.1:80 (private address 10.0.0.1)",
		"private-name.test:80 (resolves to private address 10.9.8.7)",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("Blocked(probe) lacks %q; got:\n%s", want, joined)
		}
	}
	if len(blocked) != 5 {
		t.Errorf("Blocked(probe) has %d entries, want 5 (allowed requests must not appear):\n%s", len(blocked), joined)
	}

	// The upstream saw the real key, never the placeholder.
	upLogs := containerLogs(t, cli, upName)
	if !strings.Contains(upLogs, "SEEN /v1/messages x-api-key="+key+" ") {
		t.Errorf("upstream did not receive the real key on /v1/messages:\n%s", upLogs)
	}
	if strings.Contains(upLogs, "SEEN /v1/messages x-api-key="+Placeholder) {
		t.Errorf("the placeholder key reached the API through the key endpoint:\n%s", upLogs)
	}
	// The key is in neither the agent's nor the proxy's container configuration.
	for k, v := range cfg.Env {
		if strings.Contains(v, key) {
			t.Errorf("agent env %s holds the key", k)
		}
	}
	info, err := cli.ContainerInspect(ctx, RunBase(eg.runID)+"-proxy")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(info)
	if bytes.Contains(raw, []byte(key)) {
		t.Errorf("docker inspect of the proxy container shows the key")
	}
	if strings.Contains(containerLogs(t, cli, RunBase(eg.runID)+"-proxy"), key) {
		t.Errorf("the proxy logged the key")
	}
}

func TestAgentConfigEnvPointsAtTheProxy(t *testing.T) {
	cli := dockertest.Client(t)
	exe, _ := testBinaries(t)
	runID := dockertest.RunID(t)
	ctx := t.Context()
	openai := preset.API{Provider: preset.OpenAI, Upstream: "https://api.openai.com/v1", KeyHeader: "authorization",
		KeyEnv: []string{"OPENAI_API_KEY", "CODEX_API_KEY"}, BaseURLEnv: []string{"OPENAI_BASE_URL"}}
	gemini := preset.API{Provider: preset.Gemini, Upstream: "https://generativelanguage.googleapis.com", KeyHeader: "x-goog-api-key",
		KeyEnv: []string{"GEMINI_API_KEY"}, BaseURLEnv: []string{"GOOGLE_GEMINI_BASE_URL"}}
	eg, err := Start(ctx, cli, RunSpec{RunID: runID, Executable: exe, Keys: []Key{{API: openai, Value: "sk-openai-secret"}}})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer func() {
		if err := eg.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := eg.Close(context.Background()); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}()
	cfg, err := eg.AgentConfig(ctx, Agent{JobID: "a[1]", Allow: []string{"pypi.org:443"}, APIs: []preset.API{openai, gemini}})
	if err != nil {
		t.Fatalf("AgentConfig: %v", err)
	}
	ip := eg.ProxyIP()
	tok := strings.TrimPrefix(strings.SplitN(cfg.Env["HTTPS_PROXY"], ":", 3)[1], "//")
	base := fmt.Sprintf("http://%s:%d/%s/openai", ip, KeysPort, tok)
	want := map[string]string{
		"HTTPS_PROXY": fmt.Sprintf("http://%s:x@%s:%d", tok, ip, ProxyPort), "OPENAI_BASE_URL": base,
		"OPENAI_API_KEY": Placeholder, "CODEX_API_KEY": Placeholder, "NO_PROXY": ip + ",localhost,127.0.0.1,::1",
	}
	for k, v := range want {
		if cfg.Env[k] != v {
			t.Errorf("env %s = %q, want %q", k, cfg.Env[k], v)
		}
	}
	for _, k := range []string{"http_proxy", "https_proxy", "HTTP_PROXY", "no_proxy"} {
		if cfg.Env[k] == "" {
			t.Errorf("env %s is not set", k)
		}
	}
	if _, ok := cfg.Env["GEMINI_API_KEY"]; ok {
		t.Errorf("a provider without a key got a placeholder: %v", cfg.Env)
	}
	if cfg.BaseURL[preset.OpenAI] != base || len(cfg.BaseURL) != 1 {
		t.Errorf("BaseURL = %v", cfg.BaseURL)
	}
	if _, err := eg.AgentConfig(ctx, Agent{JobID: "bad", Allow: []string{"no-port"}}); err == nil || !strings.Contains(err.Error(), `"no-port" is not host:port`) {
		t.Errorf("a bad allow entry gave %v", err)
	}
	// A failed request must not put the channel out of step.
	if b, err := eg.Blocked(ctx, "a[1]"); err != nil || len(b) != 0 {
		t.Errorf("Blocked after a refused registration = %v, %v", b, err)
	}
}

func TestProductionBuildRefusesTestOverrides(t *testing.T) {
	cli := dockertest.Client(t)
	dir := t.TempDir()
	exe := filepath.Join(dir, "runner")
	if err := goBuild(exe, "github.com/agentrunner/agentrunner/cmd/runner"); err != nil {
		t.Fatal(err)
	}
	runID := dockertest.RunID(t)
	_, err := Start(t.Context(), cli, RunSpec{RunID: runID, Executable: exe, TestAllowOutside: true, StartTimeout: 20 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "does not accept test-only") {
		t.Fatalf("Start with a test override on a production build = %v, want a refusal", err)
	}
}

func TestImageRefusesDynamicExecutables(t *testing.T) {
	cli := dockertest.Client(t)
	for _, tc := range []struct{ name, path, want string }{
		{"a dynamically linked executable", "/bin/ls", "dynamically linked"},
		{"a file that is not an executable", "egress.go", "not a Linux executable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Image(t.Context(), cli, tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Image(%s) = %v, want %q", tc.path, err, tc.want)
			}
		})
	}
}

func TestSandboxReaperRemovesACrashedRunsProxy(t *testing.T) {
	cli := dockertest.Client(t)
	exe, _ := testBinaries(t)
	runID := dockertest.RunID(t)
	eg, err := Start(t.Context(), cli, RunSpec{RunID: runID, Executable: exe})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	// A crash: nobody calls Close. The next start-up's reaper sweeps this run only.
	removed, err := sandbox.NewDocker(cli, sandbox.Options{}).Reap(t.Context(), func(l sandbox.Leftover) bool { return l.RunID == runID })
	if err != nil {
		t.Fatalf("Reap: %v", err)
	}
	if len(removed) != 3 {
		t.Errorf("Reap removed %v, want the proxy container and both networks", removed)
	}
	// Close after a reap finds nothing left and does not fail.
	if err := eg.Close(t.Context()); err != nil {
		t.Errorf("Close after Reap: %v", err)
	}
}

// hostAddrs is this host's IPv4 addresses other than loopback: the bridges' and the uplink's.
func hostAddrs(t *testing.T) []string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			out = append(out, ipn.IP.String())
		}
	}
	if len(out) == 0 {
		t.Fatal("the host has no IPv4 address besides loopback")
	}
	return out
}

// startEgress starts a run's proxy for a test and closes it when the test ends.
func startEgress(t *testing.T, cli client.APIClient, spec RunSpec) *Egress {
	t.Helper()
	eg, err := Start(t.Context(), cli, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := eg.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return eg
}
