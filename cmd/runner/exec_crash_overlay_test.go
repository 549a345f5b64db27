package main

import (
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
	"github.com/docker/docker/api/types/volume"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/sandbox"
)

// A `runner exec` killed with SIGKILL while its agent runs on an overlay workspace leaves the
// container, its overlay volume, the job's upper layer and the shared checkout under it; the
// next exec removes all of them: the container, then the volume (which the engine unmounts when
// the container goes), then the files.
func TestKilledExecsOverlayWorkspaceIsReapedByTheNext(t *testing.T) {
	cli := dockertest.Client(t)
	dockertest.TestAgentImage(t)
	exe := dockertest.BuildRunner(t)
	cache := t.TempDir()
	repo := gitRepo(t, map[string]string{
		"src/a.txt":          "a\n",
		".agents/hold.yaml":  "on: push\ndefaults: {image: agentrunner/testagent:dev, timeout: 5m}\nagents:\n  hold: {command: [\"/testagent\", \"write\", \"src/a.txt=changed\", \"hold\"], changes: keep}\n",
		".agents/quick.yaml": "on: push\ndefaults: {image: agentrunner/testagent:dev, timeout: 1m}\nagents:\n  quick: {command: [\"/testagent\", \"print\", \"hi\"]}\n",
	})
	runner := func(args ...string) *exec.Cmd {
		cmd := exec.Command(exe, args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cache)
		return cmd
	}
	first := runner("exec", "--progress", "plain", "--workspace", "overlay", "hold")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Process.Kill(); _ = first.Wait() })
	host, _ := os.Hostname()
	owner := "exec:" + host + ":" + strconv.Itoa(first.Process.Pid) + ":"
	byOwner := filters.NewArgs(filters.Arg("label", sandbox.LabelOwner))
	var ctr, vol string
	for start := time.Now(); (ctr == "" || vol == "") && time.Since(start) < time.Minute; time.Sleep(100 * time.Millisecond) {
		cs, err := cli.ContainerList(t.Context(), container.ListOptions{All: true, Filters: byOwner})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			// The agent's, not the overlay probe's that ran first.
			if strings.HasPrefix(c.Labels[sandbox.LabelOwner], owner) && c.Labels[sandbox.LabelJob] == "hold" && c.State == "running" {
				ctr = c.ID
			}
		}
		vs, err := cli.VolumeList(t.Context(), volume.ListOptions{Filters: byOwner})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs.Volumes {
			if strings.HasPrefix(v.Labels[sandbox.LabelOwner], owner) && v.Labels[sandbox.LabelJob] == "hold" {
				vol = v.Name
			}
		}
	}
	if ctr == "" || vol == "" {
		t.Fatalf("the exec never ran its agent on an overlay volume (container %q, volume %q)", ctr, vol)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(t.Context(), ctr, container.RemoveOptions{Force: true})
		_ = cli.VolumeRemove(t.Context(), vol, true)
	})
	// The agent's write is in its upper layer before the kill.
	uppers := waitGlob(t, filepath.Join(cache, "agentrunner", "exec", "*", "workspaces", "*", "hold", "upper", "src", "a.txt"))
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait() // the cleanup's Wait then returns at once
	shared, _ := filepath.Glob(filepath.Join(cache, "agentrunner", "exec", "*", "workspaces", ".shared", "*"))
	if len(shared) == 0 {
		t.Fatal("no shared checkout in the killed exec's workspaces")
	}

	second := runner("exec", "--progress", "plain", "--workspace", "overlay", "quick")
	if out, err := second.CombinedOutput(); err != nil {
		t.Fatalf("the next exec: %v\n%s", err, out)
	}
	if _, err := cli.ContainerInspect(t.Context(), ctr); err == nil {
		t.Error("the next exec left the killed exec's container")
	}
	if _, err := cli.VolumeInspect(t.Context(), vol); err == nil {
		t.Errorf("the next exec left the killed exec's overlay volume %s", vol)
	}
	for _, p := range append(uppers, shared...) {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("the next exec left %s", p)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(cache, "agentrunner", "exec", "*")); len(left) > 0 {
		t.Errorf("the next exec left the killed exec's home: %v", left)
	}
}

// waitGlob waits up to a minute for pattern to match, and returns the matches.
func waitGlob(t *testing.T, pattern string) []string {
	t.Helper()
	for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(100 * time.Millisecond) {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return m
		}
	}
	t.Fatalf("nothing matches %s", pattern)
	return nil
}
