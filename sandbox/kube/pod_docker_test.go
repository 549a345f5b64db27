package kube

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/internal/kubetest"
	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/sandbox/kube/carry"
)

// The pod's side as real processes in real containers, hardened as the pod's are (read-only
// root, no capabilities, uid 10001): the workspace's container (the runner image's /runner
// kube-fetch) fills the workspace from the exchange and leaves the runner for the agent's
// container while its hook (kube-wait) waits for that, then the agent's kube-agent runs the agent (the test agent image, with no runner of its own)
// and hands its changes back. The daemon's workspace then has the agent's file and outputs;
// the agent's exit code is the container's.
func TestThePodsContainersFillAndHandBackTheWorkspace(t *testing.T) {
	cli := dockertest.Client(t)
	agentImage := dockertest.TestAgentImage(t)
	runID := dockertest.RunID(t)
	runnerImage := kubetest.RunnerImage(t)

	// The daemon's side: a job's workspace and output directory, served by the exchange.
	ws, out := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "README.md"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	x := &Exchange{}
	token := NewToken()
	job := x.register(token, ws, out, carry.Limits{Bytes: 1 << 30, Entries: 10000})
	job.markReady(nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: x}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	// The pod's volumes: emptyDirs in a cluster, host directories here.
	vols := map[string]string{}
	for _, p := range []string{sandbox.WorkspacePath, sandbox.OutputPath, carry.RunnerDir} {
		d := t.TempDir()
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
		vols[p] = d
	}
	env := []string{carry.EnvURL + "=http://" + ln.Addr().String(), carry.EnvToken + "=" + token,
		sandbox.EnvOutputDir + "=" + sandbox.OutputPath, "HOME=/tmp"}
	// The workspace's container and, beside it as the kubelet runs it, its postStart hook.
	hookDone := make(chan struct{})
	var hookCode int
	var hookLogs string
	go func() {
		defer close(hookDone)
		hookCode, hookLogs = runHardened(t, cli, runID, runnerImage, []string{"/runner", carry.WaitCommand}, env, vols)
	}()
	code, logs := runHardened(t, cli, runID, runnerImage, []string{"/runner", carry.FetchCommand}, env, vols)
	<-hookDone
	if code != 0 || hookCode != 0 {
		t.Fatalf("the workspace's container exited %d, its hook %d:\n%s\n%s", code, hookCode, logs, hookLogs)
	}
	if got, _ := os.ReadFile(filepath.Join(vols[sandbox.WorkspacePath], "README.md")); string(got) != "hello\n" {
		t.Fatalf("the pod's workspace has README.md %q", got)
	}
	code, logs = runHardened(t, cli, runID, agentImage, []string{carry.RunnerPath, carry.AgentCommand, "--",
		"/testagent", "write", "FIXED=yes", "output", "verdict=done", "print", "agent ran", "exit", "3"}, env, vols)
	if code != 3 || !strings.Contains(logs, "agent ran") {
		t.Fatalf("the agent's container: exit %d, want the agent's 3, with its output:\n%s", code, logs)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := job.waitHanded(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(ws, "FIXED")); string(got) != "yes" {
		t.Errorf("the daemon's workspace has FIXED %q, want the agent's file", got)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "outputs.json")); !bytes.Contains(got, []byte(`"verdict"`)) {
		t.Errorf("the daemon's output directory has outputs.json %q", got)
	}
}

// runHardened runs argv in image as a pod's container would run: read-only root filesystem,
// every capability dropped, no new privileges, uid 10001, the given volumes; it returns the
// exit code and the output, and removes the container. It may run on a goroutine of the test
// (a failure is an Error and exit -1).
func runHardened(t *testing.T, cli client.APIClient, runID, image string, argv, env []string, vols map[string]string) (int, string) {
	t.Helper()
	ctx := t.Context()
	var mounts []mount.Mount
	for target, src := range vols {
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: src, Target: target})
	}
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: image, Entrypoint: argv[:1], Cmd: argv[1:], Env: env, User: "10001:10001",
		WorkingDir: sandbox.WorkspacePath, Labels: map[string]string{dockertest.LabelRun: runID}},
		&container.HostConfig{NetworkMode: "host", ReadonlyRootfs: true, CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"},
			Mounts: mounts, Tmpfs: map[string]string{"/tmp": "size=64m"}}, nil, nil, "")
	if err != nil {
		t.Error(err)
		return -1, ""
	}
	defer func() {
		_ = cli.ContainerRemove(context.WithoutCancel(ctx), c.ID, container.RemoveOptions{Force: true})
	}()
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Error(err)
		return -1, ""
	}
	var code int64
	statusCh, errCh := cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	select {
	case st := <-statusCh:
		code = st.StatusCode
	case err := <-errCh:
		t.Error(err)
		return -1, ""
	}
	rc, err := cli.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Error(err)
		return -1, ""
	}
	defer rc.Close()
	var buf bytes.Buffer
	_, _ = stdcopy.StdCopy(&buf, &buf, rc)
	return int(code), buf.String()
}
