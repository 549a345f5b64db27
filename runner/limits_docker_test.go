package runner

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/runner/result"
)

// TestDockerJobLimits runs agents that go past every bound a job has: the size of one changed
// file, of the patch, of what it writes to disk and of its log.
func TestDockerJobLimits(t *testing.T) {
	t.Parallel()
	r := newDockerRig(t)
	r.eng.Limits = Limits{Log: 64 << 10}
	gitBefore := gittest.DirSize(t, filepath.Join(r.repo, ".git"))
	start := time.Now()
	res := r.run(t, t.Context(), `
agents:
  big-file:
    changes: keep
    limits: {changed-file: 1m}
    command: ["/testagent", "fill", "big.bin=5m", "write", "small.txt=small\n"]
  big-patch:
    changes: keep
    limits: {changed-file: 10m, patch: 1m}
    command: ["/testagent", "fill", "a.txt=800k", "fill", "b.txt=800k"]
  small:
    changes: keep
    limits: {changed-file: 1m, patch: 1m}
    command: ["/testagent", "write", "ok.txt=fine\n"]
  disk:
    resources: {disk: 20m}
    command: ["/testagent", "fill", "big.bin=100m", "hold"]
  chatty:
    command: ["/testagent", "tick", "20000", "0s"]
`)
	if d := time.Since(start); d > 90*time.Second {
		t.Errorf("the run took %s; the disk filler should have been stopped at once", d)
	}
	for id, want := range map[string]string{
		"big-file":  "changes too large: big.bin is 5m, over the limit of 1m on one changed file; no changes were kept (raise limits.changed-file",
		"big-patch": "changes too large: the patch passed the limit of 1m; no changes were kept (raise limits.patch",
	} {
		j := jobOf(t, res, id)
		if j.Outcome != result.Failed || !strings.Contains(j.Error, want) {
			t.Errorf("%s = %s (%s), want failed with %q", id, j.Outcome, j.Error, want)
		}
		if j.Changes != nil {
			t.Errorf("%s kept changes %+v", id, j.Changes)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(j.LogPath), "changes.patch")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left a changes.patch (stat: %v)", id, err)
		}
	}
	if j := jobOf(t, res, "small"); j.Outcome != result.Success || j.Changes == nil || j.Changes.PatchSize == 0 {
		t.Errorf("small = %s (%s), changes %+v; want its patch kept", j.Outcome, j.Error, j.Changes)
	}
	if files := applyTo(t, r.repo, r.sha, res.Patch); files["ok.txt"] != "fine\n" || files["small.txt"] != "" || files["a.txt"] != "" {
		t.Errorf("the combined patch holds %d files; want small's ok.txt only", len(files))
	}
	// Nothing of the refused changes reached the source repository's object store.
	if grew := gittest.DirSize(t, filepath.Join(r.repo, ".git")) - gitBefore; grew > 256<<10 {
		t.Errorf("the source's .git grew by %d bytes", grew)
	}

	disk := jobOf(t, res, "disk")
	if disk.Outcome != result.DiskLimit || !strings.Contains(disk.Error, "the agent wrote more than 20m into /workspace and /agent/out (disk limit) and was stopped; raise resources.disk") {
		t.Errorf("disk = %s (%s), want disk_limit with an explanation", disk.Outcome, disk.Error)
	}
	if disk.Finished.Sub(disk.Started) > 30*time.Second {
		t.Errorf("the disk filler ran for %s before it was stopped", disk.Finished.Sub(disk.Started))
	}

	chatty := jobOf(t, res, "chatty")
	log, err := os.ReadFile(chatty.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(log)
	if len(log) > 64<<10+200 || !strings.HasPrefix(s, "tick 1\n") || !strings.HasSuffix(s, "tick 20000\n") ||
		!strings.Contains(s, " bytes cut by agentrunner: the log exceeded 64k; its first and last 32k are kept …]\n") {
		t.Errorf("log.txt is %d bytes; want at most 64k with its head, a note of the cut and its tail:\n%.300s\n…\n%s", len(log), s, s[max(0, len(s)-300):])
	}
	if res.Conclusion != result.ConclusionFailure {
		t.Errorf("conclusion %s, want failure", res.Conclusion)
	}
}
