package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/internal/dockertest"
)

// A `runner exec` killed with SIGKILL while its agent runs on an overlay workspace leaves the
// container, its overlay volume, the job's upper layer and the shared checkout under it; the
// next exec removes all of them: the container, then the volume (which the engine unmounts when
// the container goes), then the files.
func TestKilledExecsOverlayWorkspaceIsReapedByTheNext(t *testing.T) {
	cli := dockertest.Client(t)
	r := newExecRig(t, map[string]string{
		"src/a.txt":          "a\n",
		".agents/hold.yaml":  "on: push\ndefaults: {image: agentrunner/testagent:dev, timeout: 5m}\nagents:\n  hold: {command: [\"/testagent\", \"write\", \"src/a.txt=changed\", \"hold\"], changes: keep}\n",
		".agents/quick.yaml": "on: push\ndefaults: {image: agentrunner/testagent:dev, timeout: 1m}\nagents:\n  quick: {command: [\"/testagent\", \"print\", \"hi\"]}\n",
	})
	cache := r.cache
	first, ctr := r.startUntilRunning(t, "hold", "exec", "--progress", "plain", "--workspace", "overlay", "hold")
	// The job's overlay volume is named like its container.
	info, err := cli.ContainerInspect(t.Context(), ctr)
	if err != nil {
		t.Fatal(err)
	}
	vol := strings.TrimPrefix(info.Name, "/")
	if _, err := cli.VolumeInspect(t.Context(), vol); err != nil {
		t.Fatalf("the agent runs without its overlay volume: %v", err)
	}
	t.Cleanup(func() { _ = cli.VolumeRemove(context.Background(), vol, true) })
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

	second := r.command("exec", "--progress", "plain", "--workspace", "overlay", "quick")
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
