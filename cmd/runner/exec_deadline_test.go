package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/sandbox"
)

// A `runner exec` killed with SIGKILL leaves its agent's container behind: the container must
// still stop at the agent's deadline (plus the grace period) by itself, and the next exec must
// remove it and the killed exec's workspaces.
func TestKilledExecsAgentStopsAtItsDeadlineAndTheNextExecReapsIt(t *testing.T) {
	cli := dockertest.Client(t)
	r := newExecRig(t, map[string]string{
		".agents/hold.yaml":  "on: push\ndefaults: {image: agentrunner/testagent:dev, timeout: 3s}\nagents:\n  hold: {command: [\"/testagent\", \"hold\"], changes: keep}\n",
		".agents/quick.yaml": "on: push\ndefaults: {image: agentrunner/testagent:dev, timeout: 1m}\nagents:\n  quick: {command: [\"/testagent\", \"print\", \"hi\"]}\n",
	})
	cache, runner := r.cache, r.command
	first, id := r.startUntilRunning(t, "hold", "exec", "--progress", "plain", "hold")
	killed := time.Now()
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	homes, _ := filepath.Glob(filepath.Join(cache, "agentrunner", "exec", "*"))
	if len(homes) != 1 {
		t.Fatalf("want the killed exec's home in the cache, got %v", homes)
	}

	// Deadline 3s after the container's start, then the 10s grace at most.
	limit := 3*time.Second + 10*time.Second + 5*time.Second
	for {
		info, err := cli.ContainerInspect(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if !info.State.Running {
			if info.State.ExitCode != sandbox.ExitDeadline {
				t.Errorf("the container exited %d, want the supervisor's %d", info.State.ExitCode, sandbox.ExitDeadline)
			}
			t.Logf("container stopped by itself %s after the runner was killed", time.Since(killed).Round(100*time.Millisecond))
			break
		}
		if time.Since(killed) > limit {
			t.Fatalf("the container still runs %s after its runner was killed: nothing enforces its deadline", limit)
		}
		time.Sleep(200 * time.Millisecond)
	}

	second := runner("exec", "--progress", "plain", "quick")
	if out, err := second.CombinedOutput(); err != nil {
		t.Fatalf("the next exec: %v\n%s", err, out)
	}
	if _, err := cli.ContainerInspect(t.Context(), id); err == nil {
		t.Error("the next exec left the killed exec's container")
	}
	if left, _ := filepath.Glob(filepath.Join(cache, "agentrunner", "exec", "*")); len(left) > 0 {
		t.Errorf("the next exec left the killed exec's home: %v", left)
	}
}

// execRig is the runner's built executable, run as `runner exec` in a repository of its own
// with its own cache directory (where execs keep their homes).
type execRig struct{ exe, repo, cache string }

func newExecRig(t *testing.T, files map[string]string) *execRig {
	t.Helper()
	dockertest.TestAgentImage(t)
	return &execRig{exe: dockertest.BuildRunner(t), repo: gitRepo(t, files), cache: t.TempDir()}
}

func (r *execRig) command(args ...string) *exec.Cmd {
	cmd := exec.Command(r.exe, args...)
	cmd.Dir = r.repo
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+r.cache)
	return cmd
}

// startUntilRunning starts the runner with args and waits until the container of its job runs
// (not the overlay probe's, which runs first); it returns the process and the container id.
func (r *execRig) startUntilRunning(t *testing.T, job string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cli := dockertest.Client(t)
	cmd := r.command(args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	host, _ := os.Hostname()
	prefix := "exec:" + host + ":" + strconv.Itoa(cmd.Process.Pid) + ":"
	for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(100 * time.Millisecond) {
		cs, err := cli.ContainerList(t.Context(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", sandbox.LabelOwner))})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if strings.HasPrefix(c.Labels[sandbox.LabelOwner], prefix) && c.Labels[sandbox.LabelJob] == job && c.State == "running" {
				t.Cleanup(func() { _ = cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true}) })
				return cmd, c.ID
			}
		}
	}
	t.Fatalf("the exec's container of %s never ran", job)
	return nil, ""
}
