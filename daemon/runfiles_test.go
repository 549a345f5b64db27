package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/agentrunner/agentrunner/runner/result"
)

type savedFiles struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *savedFiles) SaveRunFile(_ context.Context, runID, name string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[runID+"/"+name] = string(data)
	return nil
}

// A finished run's files and its jobs' logs go to the store; a log longer than the bound keeps
// its end, after a line that says where the rest is.
func TestFinishedRunsFilesAreKept(t *testing.T) {
	runDir := filepath.Join(t.TempDir(), "r1")
	logs := map[string]string{"a": "short log\n", "b": strings.Repeat("x", 100) + "THE END\n"}
	res := &result.Run{Report: "# Report\n"}
	for id, text := range logs {
		p := filepath.Join(runDir, "jobs", id, "log.txt")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		res.Jobs = append(res.Jobs, &result.Job{ID: id, LogPath: p})
	}
	// A log outside the run directory is not the run's to keep.
	res.Jobs = append(res.Jobs, &result.Job{ID: "stray", LogPath: "/etc/passwd"})
	saved := &savedFiles{m: map[string]string{}}
	p := &GitPipeline{Files: saved}
	p.saveFiles(t.Context(), "r1", runDir, res, map[string][]byte{"report.md": []byte(res.Report)})
	if got := saved.m["r1/report.md"]; got != "# Report\n" {
		t.Errorf("report.md = %q", got)
	}
	if got := saved.m["r1/jobs/a/log.txt"]; got != logs["a"] {
		t.Errorf("log of a = %q, want it whole", got)
	}
	if len(saved.m) != 3 {
		t.Errorf("saved %d files, want report.md and two logs: %v", len(saved.m), saved.m)
	}
	tail, err := logTail(runDir, "jobs/b/log.txt", 10)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(tail), "xx"+"THE END\n") || !strings.Contains(string(tail), "the first 98 bytes of this log are only on the runner that ran the job") {
		t.Errorf("logTail = %q, want a note and the last 10 bytes", tail)
	}
}

// A job's patch goes to the store beside its log as patch.diff; one outside the run directory
// does not.
func TestJobPatchesAreKept(t *testing.T) {
	runDir := filepath.Join(t.TempDir(), "r1")
	write := func(rel, text string) string {
		p := filepath.Join(runDir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	patch := "diff --git a/x b/x\n"
	res := &result.Run{Jobs: []*result.Job{
		{ID: "fix[a]", Changes: &result.Changes{PatchFile: write("jobs/fix_a_-1234/changes.patch", patch)}},
		{ID: "none"},
		{ID: "stray", Changes: &result.Changes{PatchFile: "/etc/passwd"}},
	}}
	saved := &savedFiles{m: map[string]string{}}
	(&GitPipeline{Files: saved}).saveFiles(t.Context(), "r1", runDir, res, map[string][]byte{})
	if got := saved.m["r1/jobs/fix_a_-1234/patch.diff"]; got != patch || len(saved.m) != 1 {
		t.Errorf("saved %v, want only jobs/fix_a_-1234/patch.diff = %q", saved.m, patch)
	}
}
