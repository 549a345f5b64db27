package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/internal/nettest"
	"github.com/agentrunner/agentrunner/internal/syncbuf"
	"github.com/agentrunner/agentrunner/sandbox"
)

// newDocker returns a Docker sandbox with a short stop grace so stop paths are quick to test.
func newDocker(t testing.TB) *sandbox.Docker {
	t.Helper()
	return sandbox.NewDocker(dockertest.Client(t), sandbox.Options{
		StopGrace: time.Second,
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newSpec is a test agent spec with fresh workspace and output directories.
func newSpec(t testing.TB, runID string, argv ...string) *sandbox.Spec {
	t.Helper()
	return &sandbox.Spec{
		RunID:        runID,
		JobID:        "job[1]",
		Image:        dockertest.TestAgentImage(t),
		Argv:         append([]string{"/testagent"}, argv...),
		Prompt:       "Do the thing.",
		WorkspaceDir: t.TempDir(),
		OutputDir:    t.TempDir(),
		Timeout:      time.Minute,
	}
}

// run prepares, runs and destroys spec, checking that the container is gone afterwards.
func run(ctx context.Context, t testing.TB, sb *sandbox.Docker, spec *sandbox.Spec) (*sandbox.Result, string, error) {
	t.Helper()
	h, err := sb.Prepare(ctx, spec)
	if err != nil {
		return nil, "", err
	}
	var logs syncbuf.Buffer
	res, runErr := sb.Run(ctx, h, &logs)
	if err := sb.Destroy(ctx, h); err != nil {
		t.Errorf("Destroy: %v", err)
	}
	if _, err := sb.Client().ContainerInspect(context.Background(), h.ID); !cerrdefs.IsNotFound(err) {
		t.Errorf("container %s still exists after the run (inspect error: %v)", h.Name, err)
	}
	return res, logs.String(), runErr
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestRunSuccessWritesWorkspaceAndOutputs(t *testing.T) {
	t.Parallel()
	runID := dockertest.RunID(t)
	spec := newSpec(t, runID,
		"write", "src/a.txt=hello",
		"output", "verdict=yes",
		"output-json", `tasks=["a","b"]`,
		"report", "All good.",
		"finding", "src/a.txt:1:warning:greets",
		"echo-prompt",
		"eprint", "on stderr",
	)
	res, logs, err := run(t.Context(), t, newDocker(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != sandbox.Success || res.ExitCode != 0 {
		t.Fatalf("outcome %s exit %d, want success 0; logs:\n%s", res.Outcome, res.ExitCode, logs)
	}
	if res.Duration <= 0 || res.Finished.Before(res.Started) {
		t.Errorf("bad timing: %+v", res)
	}
	if got := readFile(t, filepath.Join(spec.WorkspaceDir, "src/a.txt")); got != "hello" {
		t.Errorf("src/a.txt = %q", got)
	}
	var outputs map[string]any
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(spec.OutputDir, "outputs.json"))), &outputs); err != nil {
		t.Fatal(err)
	}
	if outputs["verdict"] != "yes" || fmt.Sprint(outputs["tasks"]) != "[a b]" {
		t.Errorf("outputs.json = %v", outputs)
	}
	if got := readFile(t, filepath.Join(spec.OutputDir, "report.md")); got != "All good.\n" {
		t.Errorf("report.md = %q", got)
	}
	if got := readFile(t, filepath.Join(spec.OutputDir, "findings.json")); !strings.Contains(got, `"message": "greets"`) {
		t.Errorf("findings.json = %s", got)
	}
	if got := readFile(t, filepath.Join(spec.OutputDir, "prompt.md")); got != spec.Prompt {
		t.Errorf("prompt.md = %q", got)
	}
	// Demultiplexed: both streams, without Docker's 8-byte frame headers. The order between
	// the two streams is not kept by Docker, so compare sorted lines.
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	sort.Strings(lines)
	if got := strings.Join(lines, "|"); got != "Do the thing.|on stderr" {
		t.Errorf("logs = %q", logs)
	}
}

func TestExitCodeDecidesSuccessOrFailure(t *testing.T) {
	t.Parallel()
	sb := newDocker(t)
	tests := []struct {
		name    string
		argv    []string
		outcome sandbox.Outcome
		code    int
	}{
		{"exit 0 is success", []string{"exit", "0"}, sandbox.Success, 0},
		{"exit 3 is a failure with code 3", []string{"exit", "3"}, sandbox.Failed, 3},
		{"an unknown step fails with 1", []string{"frobnicate"}, sandbox.Failed, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, logs, err := run(t.Context(), t, sb, newSpec(t, dockertest.RunID(t), tt.argv...))
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != tt.outcome || res.ExitCode != tt.code {
				t.Errorf("outcome %s exit %d, want %s %d; logs:\n%s", res.Outcome, res.ExitCode, tt.outcome, tt.code, logs)
			}
		})
	}
}

func TestAgentCommitsWithGitInsideTheContainer(t *testing.T) {
	t.Parallel()
	spec := newSpec(t, dockertest.RunID(t), "write", "new.txt=x", "delete", "old.txt", "binary", "b.bin", "commit", "agent change")
	ws := spec.WorkspaceDir
	gitRun := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", ws, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "safe.directory=*"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	gitRun("init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(ws, "old.txt"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun("add", "-A")
	gitRun("commit", "-q", "-m", "base")

	res, logs, err := run(t.Context(), t, newDocker(t), spec)
	if err != nil || res.Outcome != sandbox.Success {
		t.Fatalf("run: %v %+v\n%s", err, res, logs)
	}
	if got := gitRun("log", "--format=%s"); got != "agent change\nbase\n" {
		t.Errorf("git log = %q", got)
	}
	if got := gitRun("show", "--name-status", "--format=", "HEAD"); got != "A\tb.bin\nA\tnew.txt\nD\told.txt\n" {
		t.Errorf("HEAD changes = %q", got)
	}
	if got := gitRun("status", "--porcelain"); got != "" {
		t.Errorf("worktree not clean after the agent's commit: %q", got)
	}
}

func TestHardeningHoldsInsideTheContainer(t *testing.T) {
	t.Parallel()
	res, logs, err := run(t.Context(), t, newDocker(t), newSpec(t, dockertest.RunID(t), "escape"))
	if err != nil || res.Outcome != sandbox.Success {
		t.Fatalf("run: %v %+v\n%s", err, res, logs)
	}
	_, js, ok := strings.Cut(logs, "ESCAPE ")
	if !ok {
		t.Fatalf("no escape report in logs:\n%s", logs)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(js)), &rep); err != nil {
		t.Fatalf("escape report: %v\n%s", err, js)
	}
	want := map[string]any{
		"cap_eff":         "0000000000000000", // no capabilities at all
		"write_root":      false,
		"write_etc":       false,
		"write_usr":       false,
		"write_proc_sys":  false,
		"write_workspace": true, // the positive controls: the allowed places are writable
		"write_out":       true,
		"write_tmp":       true,
		"net_ip":          false,
		"net_dns":         false,
		"docker_sock":     false,
		"setuid":          false,
		"uid":             float64(10001),
		"gid":             float64(10001),
	}
	for k, v := range want {
		if rep[k] != v {
			t.Errorf("%s = %v, want %v", k, rep[k], v)
		}
	}
}

func TestNetworkModeDecidesReachability(t *testing.T) {
	t.Parallel()
	// A listener on the host, reached through the default bridge's gateway: it proves that
	// `none` really cuts the container off, while `open` reaches it (there is no internet here).
	ln := nettest.AcceptAll(t, "0.0.0.0:0")
	addr := net.JoinHostPort(bridgeGateway(t), fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	sb := newDocker(t)
	tests := []struct {
		name    string
		mode    string
		outcome sandbox.Outcome
	}{
		{"none (the default) reaches nothing", "", sandbox.Failed},
		{"none reaches nothing", sandbox.NetworkNone, sandbox.Failed},
		{"open reaches the host", sandbox.NetworkOpen, sandbox.Success},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := newSpec(t, dockertest.RunID(t), "connect", addr)
			spec.Network.Mode = tt.mode
			res, logs, err := run(t.Context(), t, sb, spec)
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != tt.outcome {
				t.Errorf("outcome %s, want %s; logs:\n%s", res.Outcome, tt.outcome, logs)
			}
		})
	}
}

func TestLimitsAndTimeoutsEndRuns(t *testing.T) {
	t.Parallel()
	sb := newDocker(t)
	tests := []struct {
		name    string
		argv    []string
		setup   func(*sandbox.Spec)
		outcome sandbox.Outcome
		within  time.Duration
		logHas  string // a regular expression
	}{
		{"a fork bomb is stopped by the pids limit", []string{"forkbomb"},
			func(s *sandbox.Spec) { s.Resources.Pids = 64 }, sandbox.Failed, 30 * time.Second,
			// EAGAIN from fork, or from the Go runtime creating a thread: the pids limit.
			`resource temporarily unavailable|errno=11`},
		{"a memory hog is killed as out of memory", []string{"alloc", "512m"},
			func(s *sandbox.Spec) { s.Resources.Memory = 64 << 20 }, sandbox.OOM, 30 * time.Second, ""},
		{"an agent filling its workspace is stopped at its disk limit", []string{"fill", "big.bin=100m", "print", "filled", "hold"},
			func(s *sandbox.Spec) { s.Resources.Disk = 20 << 20 }, sandbox.DiskLimit, 15 * time.Second, ""},
		{"an agent filling its output directory is stopped at its disk limit", []string{"fill", "@out/big.bin=100m", "hold"},
			func(s *sandbox.Spec) { s.Resources.Disk = 20 << 20 }, sandbox.DiskLimit, 15 * time.Second, ""},
		{"a checkout already larger than the disk limit is not held against the agent", []string{"fill", "small.bin=1m", "sleep", "3s"},
			func(s *sandbox.Spec) {
				s.Resources.Disk = 20 << 20
				if err := os.WriteFile(filepath.Join(s.WorkspaceDir, "checkout.bin"), bytes.Repeat([]byte("x"), 40<<20), 0o644); err != nil {
					t.Fatal(err)
				}
			}, sandbox.Success, 15 * time.Second, ""},
		{"a sleeper is stopped at its timeout", []string{"print", "sleeping", "sleep", "1h"},
			func(s *sandbox.Spec) { s.Timeout = 2 * time.Second }, sandbox.TimedOut, 15 * time.Second, "sleeping\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := newSpec(t, dockertest.RunID(t), tt.argv...)
			tt.setup(spec)
			start := time.Now()
			res, logs, err := run(t.Context(), t, sb, spec)
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != tt.outcome {
				t.Errorf("outcome %s (exit %d), want %s; logs:\n%s", res.Outcome, res.ExitCode, tt.outcome, logs)
			}
			if d := time.Since(start); d > tt.within {
				t.Errorf("took %s, want under %s", d, tt.within)
			}
			if !regexp.MustCompile(tt.logHas).MatchString(logs) {
				t.Errorf("logs %q do not match %q", logs, tt.logHas)
			}
		})
	}
}

func TestCancelStopsAndRemovesTheContainer(t *testing.T) {
	t.Parallel()
	sb := newDocker(t)
	spec := newSpec(t, dockertest.RunID(t), "print", "started", "sleep", "1h")
	ctx, cancel := context.WithCancel(t.Context())
	h, err := sb.Prepare(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy(context.Background(), h) })
	var logs syncbuf.Buffer
	done := make(chan struct{})
	var res *sandbox.Result
	var runErr error
	go func() {
		defer close(done)
		res, runErr = sb.Run(ctx, h, &logs)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), "started") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20s of cancellation")
	}
	if runErr != nil {
		t.Fatal(runErr)
	}
	if res.Outcome != sandbox.Cancelled {
		t.Errorf("outcome %s, want cancelled; logs: %s", res.Outcome, logs.String())
	}
	// Gone right after Run, before any Destroy.
	if _, err := sb.Client().ContainerInspect(context.Background(), h.ID); !cerrdefs.IsNotFound(err) {
		t.Errorf("container still there after a cancelled run: %v", err)
	}
	for range 2 {
		if err := sb.Destroy(context.Background(), h); err != nil {
			t.Errorf("Destroy after Run: %v", err)
		}
	}
}

func TestSecretsAreMaskedInLogs(t *testing.T) {
	t.Parallel()
	spec := newSpec(t, dockertest.RunID(t), "print", "token=s3cr3t-Value!", "env")
	spec.Secrets = map[string]string{"API_TOKEN": "s3cr3t-Value!"}
	res, logs, err := run(t.Context(), t, newDocker(t), spec)
	if err != nil || res.Outcome != sandbox.Success {
		t.Fatalf("run: %v %+v\n%s", err, res, logs)
	}
	if strings.Contains(logs, "s3cr3t") {
		t.Errorf("secret visible in logs:\n%s", logs)
	}
	for _, want := range []string{"token=***\n", "API_TOKEN=***\n"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}

func TestEnvHoldsOnlyDeclaredVariables(t *testing.T) {
	t.Setenv("AGENTRUNNER_HOST_ONLY", "must-not-leak")
	spec := newSpec(t, dockertest.RunID(t), "env")
	spec.Env = map[string]string{"DECLARED": "1"}
	spec.Secrets = map[string]string{"KEY": "k"}
	res, logs, err := run(t.Context(), t, newDocker(t), spec)
	if err != nil || res.Outcome != sandbox.Success {
		t.Fatalf("run: %v %+v\n%s", err, res, logs)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		k, _, _ := strings.Cut(line, "=")
		names = append(names, k)
	}
	sort.Strings(names)
	// PATH and HOSTNAME are Docker's own; everything else is declared or the sandbox contract.
	want := "AGENT_OUTPUT_DIR AGENT_PROMPT DECLARED HOME HOSTNAME KEY PATH"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("env names = %s\nwant        %s\nlogs:\n%s", got, want, logs)
	}
	for _, want := range []string{"AGENT_OUTPUT_DIR=/agent/out\n", "AGENT_PROMPT=Do the thing.\n", "HOME=/tmp\n"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
}

func TestAbsentImageIsAClearError(t *testing.T) {
	t.Parallel()
	sb := newDocker(t)
	tests := []struct {
		name   string
		policy string
		want   string
	}{
		// There is no registry here, so if-missing tries the pull and the pull fails.
		{"if-missing tries to pull and says the pull failed", sandbox.PullIfMissing,
			`pull image "agentrunner/made-up:0": not present on the Docker engine and the pull failed (pull-policy if-missing): `},
		{"never does not pull", sandbox.PullNever,
			`find image "agentrunner/made-up:0": not present on the Docker engine and pull-policy is never`},
		{"always pulls and says so", sandbox.PullAlways, `pull image "agentrunner/made-up:0": the pull failed (pull-policy always)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := newSpec(t, dockertest.RunID(t), "exit", "0")
			spec.Image = "agentrunner/made-up:0"
			spec.PullPolicy = tt.policy
			h, err := sb.Prepare(t.Context(), spec)
			var ie *sandbox.InfraError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Prepare error = %v, want an *InfraError containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "Error response from daemon") {
				t.Errorf("Docker noise left in %q", err)
			}
			if h != nil {
				t.Errorf("handle %v after a failed Prepare", h)
			}
			if err := sb.Destroy(t.Context(), h); err != nil {
				t.Errorf("Destroy after a failed Prepare: %v", err)
			}
		})
	}
}

func TestMissingCommandIsAnAgentFailure(t *testing.T) {
	t.Parallel()
	// Docker's init process execs the command, so a missing binary is exit 127 as in a shell:
	// a mistake in the routine's command, reported as the agent's failure.
	spec := newSpec(t, dockertest.RunID(t))
	spec.Argv = []string{"/no/such/binary"}
	res, logs, err := run(t.Context(), t, newDocker(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != sandbox.Failed || res.ExitCode != 127 || !strings.Contains(logs, "/no/such/binary") {
		t.Errorf("got %+v, logs %q; want failed with 127 naming the binary", res, logs)
	}
}

func TestStartFailureIsAnInfraErrorAndCleansUp(t *testing.T) {
	t.Parallel()
	// A workspace that disappears between Prepare and Run makes the bind mount, hence the
	// start, fail: Docker failed, not the agent.
	sb := newDocker(t)
	spec := newSpec(t, dockertest.RunID(t), "exit", "0")
	spec.WorkspaceDir = filepath.Join(t.TempDir(), "ws")
	if err := os.Mkdir(spec.WorkspaceDir, 0o755); err != nil {
		t.Fatal(err)
	}
	h, err := sb.Prepare(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(spec.WorkspaceDir); err != nil {
		t.Fatal(err)
	}
	res, err := sb.Run(t.Context(), h, nil)
	var ie *sandbox.InfraError
	if !errors.As(err, &ie) || !strings.HasPrefix(err.Error(), `start container for job "job[1]": `) {
		t.Fatalf("got %+v, %v; want an InfraError from start", res, err)
	}
	if strings.HasSuffix(err.Error(), ": unknown") || strings.Contains(err.Error(), "Error response from daemon") {
		t.Errorf("Docker noise left in %q", err)
	}
	t.Log(err)
	if _, err := sb.Client().ContainerInspect(t.Context(), h.ID); !cerrdefs.IsNotFound(err) {
		t.Errorf("container still there after a failed start: %v", err)
	}
	if err := sb.Destroy(t.Context(), h); err != nil {
		t.Errorf("Destroy after a failed start: %v", err)
	}
}

func TestDestroyWithoutRunRemovesTheContainer(t *testing.T) {
	t.Parallel()
	sb := newDocker(t)
	h, err := sb.Prepare(t.Context(), newSpec(t, dockertest.RunID(t), "exit", "0"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := sb.Destroy(t.Context(), h); err != nil {
			t.Fatalf("Destroy #%d: %v", i+1, err)
		}
	}
	if _, err := sb.Client().ContainerInspect(t.Context(), h.ID); !cerrdefs.IsNotFound(err) {
		t.Errorf("container still there after Destroy: %v", err)
	}
	if _, err := sb.Run(t.Context(), h, nil); err == nil {
		t.Error("Run after Destroy succeeded")
	}
}

// prepared creates spec's container, which the test's end destroys, and inspects it.
func prepared(t *testing.T, sb *sandbox.Docker, spec *sandbox.Spec) (*sandbox.Handle, container.InspectResponse) {
	t.Helper()
	h, err := sb.Prepare(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy(context.Background(), h) })
	info, err := sb.Client().ContainerInspect(t.Context(), h.ID)
	if err != nil {
		t.Fatal(err)
	}
	return h, info
}

func TestContainerIsHardenedAndLabelled(t *testing.T) {
	t.Parallel()
	sb := newDocker(t)
	runID := dockertest.RunID(t)
	spec := newSpec(t, runID, "exit", "0")
	spec.Labels = map[string]string{"extra": "yes"}
	spec.Resources = sandbox.Resources{CPUs: 0.5, Memory: 128 << 20, Pids: 100}
	_, info := prepared(t, sb, spec)
	hc, cfg := info.HostConfig, info.Config
	checks := []struct {
		what     string
		got, exp any
	}{
		{"label run", cfg.Labels[sandbox.LabelRun], runID},
		{"label job", cfg.Labels[sandbox.LabelJob], "job[1]"},
		{"extra label", cfg.Labels["extra"], "yes"},
		{"user", cfg.User, sandbox.DefaultUser},
		{"working dir", cfg.WorkingDir, "/workspace"},
		{"cap drop", fmt.Sprint(hc.CapDrop), "[ALL]"},
		{"security opt", fmt.Sprint(hc.SecurityOpt), "[no-new-privileges]"},
		{"read-only root", hc.ReadonlyRootfs, true},
		{"privileged", hc.Privileged, false},
		{"network", string(hc.NetworkMode), "none"},
		{"memory", hc.Memory, int64(128 << 20)},
		{"memory+swap", hc.MemorySwap, int64(128 << 20)},
		{"cpus", hc.NanoCPUs, int64(5e8)},
		{"pids", *hc.PidsLimit, int64(100)},
		{"mounts", len(hc.Mounts) + len(hc.Binds), 2},
		{"tmpfs", strings.Contains(hc.Tmpfs["/tmp"], "mode=1777"), true},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.exp) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.exp)
		}
	}
	for _, m := range hc.Mounts {
		if m.Target != "/workspace" && m.Target != "/agent/out" {
			t.Errorf("unexpected host mount %s -> %s", m.Source, m.Target)
		}
	}
}

func TestReapRemovesLeftoversOfRunsNotKept(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	img := dockertest.TestAgentImage(t)
	crashed, alive := dockertest.RunID(t), dockertest.RunID(t)
	for _, id := range []string{crashed, alive} {
		_, err := cli.ContainerCreate(t.Context(), &container.Config{
			Image: img, Cmd: []string{"sleep", "1h"}, Labels: map[string]string{sandbox.LabelRun: id},
		}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := cli.NetworkCreate(t.Context(), "agentrunner-"+crashed, network.CreateOptions{
		Internal: true, Labels: map[string]string{sandbox.LabelRun: crashed},
	})
	if err != nil {
		t.Fatal(err)
	}
	sb := newDocker(t)
	// Other tests' runs are live too: remove only the crashed run.
	removed, err := sb.Reap(t.Context(), func(l sandbox.Leftover) bool { return l.RunID == crashed })
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 || !strings.HasPrefix(removed[0], "container ") || removed[1] != "network agentrunner-"+crashed {
		t.Errorf("removed = %q, want one container and the network of %s", removed, crashed)
	}
	dockertest.AssertNoLeftovers(t, cli, crashed)
	// The kept run's container is still there: remove it now, or its cleanup check fails.
	removed, err = sb.Reap(t.Context(), func(l sandbox.Leftover) bool { return l.RunID == alive })
	if err != nil || len(removed) != 1 {
		t.Errorf("second reap removed %q, %v; want the kept run's one container", removed, err)
	}
}

// bridgeGateway is the host's address on Docker's default bridge.
func bridgeGateway(t testing.TB) string {
	t.Helper()
	br, err := dockertest.Client(t).NetworkInspect(t.Context(), "bridge", network.InspectOptions{})
	if err != nil {
		t.Fatalf("inspect the default bridge: %v", err)
	}
	for _, c := range br.IPAM.Config {
		if c.Gateway != "" {
			return c.Gateway
		}
	}
	// Older engines leave Gateway empty for the default bridge; the host side is docker0.
	if iface, err := net.InterfaceByName(br.Options["com.docker.network.bridge.name"]); err == nil {
		if addrs, err := iface.Addrs(); err == nil {
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
					return ipn.IP.String()
				}
			}
		}
	}
	t.Fatalf("cannot find the default bridge's gateway in %+v", br.IPAM)
	return ""
}

// On an allow-listed network the agent reaches the world only through the proxy; a direct
// connection fails, and the run's result names its destination.
func TestAllowModeReportsDirectConnections(t *testing.T) {
	t.Parallel()
	runID := dockertest.RunID(t)
	internalNetwork(t, runID)
	// 192.0.2.0/24 is TEST-NET-1: nothing answers there, whatever the network.
	const proxy = "192.0.2.9"
	spec := newSpec(t, runID, "dial", "192.0.2.1:80", "dial", proxy+":3128", "dial", "[2001:db8::1]:443", "dial", "127.0.0.1:9")
	spec.Network = sandbox.Network{Mode: sandbox.NetworkAllow, Allow: []string{"example.com:443"},
		DockerNetwork: "agentrunner-" + runID, Proxy: proxy}
	res, logs, err := run(t.Context(), t, newDocker(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, "DIAL 192.0.2.1:80 => error") {
		t.Fatalf("the direct connection did not fail; logs:\n%s", logs)
	}
	if !slices.Equal(res.Direct, []string{"192.0.2.1:80"}) {
		t.Errorf("Direct = %q, want [192.0.2.1:80] (not the proxy, not loopback; IPv6 has no route at all); logs:\n%s", res.Direct, logs)
	}
}

// internalNetwork creates the internal network agentrunner-RUNID that the egress proxy would
// create for an allow-listed run, and removes it when the test ends.
func internalNetwork(t *testing.T, runID string) {
	t.Helper()
	cli := dockertest.Client(t)
	nw, err := cli.NetworkCreate(t.Context(), "agentrunner-"+runID, network.CreateOptions{
		Internal: true, Labels: map[string]string{sandbox.LabelRun: runID},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.NetworkRemove(context.Background(), nw.ID) })
}

// An allow-listed agent's only DNS server is its own loopback (CVE-2024-29018): an engine
// without the fix would otherwise forward its lookups to a resolver on the host's loopback from
// the host's namespace, past the internal network. Its lookups of outside names fail.
func TestAllowModeForwardsNoDNS(t *testing.T) {
	t.Parallel()
	runID := dockertest.RunID(t)
	internalNetwork(t, runID)
	spec := newSpec(t, runID, "resolve", "example.com")
	spec.Network = sandbox.Network{Mode: sandbox.NetworkAllow, Allow: []string{"example.com:443"},
		DockerNetwork: "agentrunner-" + runID, Proxy: "192.0.2.9"}
	sb := newDocker(t)
	h, info := prepared(t, sb, spec)
	if !slices.Equal(info.HostConfig.DNS, []string{sandbox.AllowDNS}) {
		t.Errorf("DNS = %q, want only %s, the container's own loopback", info.HostConfig.DNS, sandbox.AllowDNS)
	}
	var logs syncbuf.Buffer
	if _, err := sb.Run(t.Context(), h, &logs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "RESOLVE example.com => error") {
		t.Errorf("an allow-listed agent resolved an outside name:\n%s", logs.String())
	}
}

// createThenCancel stands for the engine finishing a create whose caller has given up: the
// create request completes, and the caller's context ends meanwhile.
type createThenCancel struct {
	base   http.RoundTripper
	cancel context.CancelFunc
}

func (c createThenCancel) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/containers/create") {
		return c.base.RoundTrip(r)
	}
	resp, err := c.base.RoundTrip(r.WithContext(context.WithoutCancel(r.Context())))
	c.cancel()
	if err == nil && r.Context().Err() != nil {
		resp.Body.Close()
		return nil, r.Context().Err()
	}
	return resp, err
}

// A job cancelled while its container is being created (fail-fast) leaves no container.
func TestPrepareCancelledDuringCreateLeavesNothing(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	runID := dockertest.RunID(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	hc := &http.Client{Transport: createThenCancel{base: cli.HTTPClient().Transport, cancel: cancel}}
	racing, err := client.NewClientWithOpts(client.WithHost(cli.DaemonHost()), client.WithHTTPClient(hc), client.WithVersion(cli.ClientVersion()))
	if err != nil {
		t.Fatal(err)
	}
	sb := sandbox.NewDocker(racing, sandbox.Options{})
	h, err := sb.Prepare(ctx, newSpec(t, runID, "exit", "0"))
	if err == nil {
		_ = sb.Destroy(context.Background(), h)
		t.Fatal("Prepare succeeded although its context ended during the create")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Prepare: %v, want the cancellation", err)
	}
	dockertest.AssertNoLeftovers(t, cli, runID)
}

// TestWorkspaceFilledWhileTheContainerIsCreated: with WorkspaceReady, Prepare creates the
// container before the workspace is filled, and Run starts the agent only once it is, with
// the files the fill wrote made writable for the agent.
func TestWorkspaceFilledWhileTheContainerIsCreated(t *testing.T) {
	t.Parallel()
	sb := newDocker(t)
	ctx := t.Context()
	spec := newSpec(t, dockertest.RunID(t), "append", "filled.txt=more")
	release := make(chan struct{})
	spec.WorkspaceReady = func(ctx context.Context) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return os.WriteFile(filepath.Join(spec.WorkspaceDir, "filled.txt"), []byte("filled\n"), 0o600)
	}
	h, err := sb.Prepare(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sb.Destroy(context.Background(), h); err != nil {
			t.Error(err)
		}
	}()
	info, err := sb.Client().ContainerInspect(ctx, h.ID)
	if err != nil || info.State.Status != "created" {
		t.Fatalf("before the workspace is ready the container should be created, not started: %v %+v", err, info.State)
	}
	close(release)
	var logs syncbuf.Buffer
	res, err := sb.Run(ctx, h, &logs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != sandbox.Success {
		t.Fatalf("outcome %s, logs:\n%s", res.Outcome, logs.String())
	}
	if got := readFile(t, filepath.Join(spec.WorkspaceDir, "filled.txt")); got != "filled\nmore" {
		t.Errorf("filled.txt = %q: the agent did not run on the filled workspace", got)
	}
}

// TestWorkspaceThatFailsToFillNeverStartsTheAgent: the fill's error is Run's, and the
// container is removed without having run.
func TestWorkspaceThatFailsToFillNeverStartsTheAgent(t *testing.T) {
	t.Parallel()
	spec := newSpec(t, dockertest.RunID(t), "write", "ran.txt=yes")
	spec.WorkspaceReady = func(context.Context) error { return errors.New("clone: the source is gone") }
	res, _, err := run(t.Context(), t, newDocker(t), spec)
	if err == nil || !strings.Contains(err.Error(), "prepare workspace: clone: the source is gone") {
		t.Fatalf("Run = %+v, %v; want the fill's error", res, err)
	}
	if _, err := os.Stat(filepath.Join(spec.WorkspaceDir, "ran.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the agent ran: %v", err)
	}
}
