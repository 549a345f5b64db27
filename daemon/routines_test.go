package daemon_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/store/storetest"
	"github.com/agentrunner/agentrunner/workspace"
)

// DefaultConfig reads a real repository's routines at its default branch once, serves them
// from memory for ConfigTTL, then fetches again and sees what was pushed meanwhile.
func TestDefaultConfigReadsTheDefaultBranchOnce(t *testing.T) {
	repoDir, head := gittest.Repo(t, map[string]string{".agents/nightly.yaml": `on:
  schedule: [{cron: "0 3 * * *"}]
  dispatch:
    inputs:
      prompt: {required: true}
agents:
  a: {image: x, command: [x]}
`})
	repos, err := daemon.NewRepos([]daemon.Repo{{Name: "acme/app", URL: repoDir, DefaultBranch: "main"}})
	if err != nil {
		t.Fatal(err)
	}
	wsm, err := workspace.NewManager(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wsm.Close() })
	pipe := &fetchCounter{GitPipeline: &daemon.GitPipeline{Workspaces: wsm, Sandbox: daemon.FakeSandbox{}, Repos: repos, RunsDir: t.TempDir()}}
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC).UnixNano())
	d, err := daemon.New(daemon.Options{Store: storetest.SQLite(t).Open(t), Pipeline: pipe, Repos: repos,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	if got := d.RepoNames(); len(got) != 1 || got[0] != "acme/app" {
		t.Errorf("RepoNames = %v", got)
	}
	if _, _, _, err := d.DefaultConfig(ctx, "acme/other"); err == nil || pipe.fetches.Load() != 0 {
		t.Errorf("a repository not served: err %v after %d fetches, want an error and no fetch", err, pipe.fetches.Load())
	}
	// Page views at once share one fetch.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			cfg, sha, branch, err := d.DefaultConfig(ctx, "acme/app")
			if err != nil || sha != head || branch != "main" || len(cfg.Routines) != 1 || cfg.Routines[0].Name != "nightly" ||
				cfg.Routines[0].On.Dispatch == nil || cfg.Routines[0].On.Dispatch.Inputs[0].Name != "prompt" {
				t.Errorf("DefaultConfig = %+v, %s, %s, %v", cfg, sha, branch, err)
			}
		})
	}
	wg.Wait()
	if n := pipe.fetches.Load(); n != 1 {
		t.Errorf("4 reads at once fetched %d times, want 1", n)
	}

	gittest.WriteFiles(t, repoDir, map[string]string{".agents/weekly.yaml": "on:\n  schedule: [{cron: \"0 4 * * 1\"}]\nagents:\n  a: {image: x, command: [x]}\n"})
	gittest.Git(t, repoDir, "add", "-A")
	gittest.Git(t, repoDir, "commit", "-qm", "weekly")
	newHead := gittest.Git(t, repoDir, "rev-parse", "HEAD")

	clock.Add(int64(daemon.ConfigTTL / 2))
	if cfg, sha, _, err := d.DefaultConfig(ctx, "acme/app"); err != nil || sha != head || len(cfg.Routines) != 1 || pipe.fetches.Load() != 1 {
		t.Errorf("within the TTL: %d routines at %s, %v, %d fetches; want the ones read before, no fetch", len(cfg.Routines), sha, err, pipe.fetches.Load())
	}
	clock.Add(int64(daemon.ConfigTTL))
	cfg, sha, _, err := d.DefaultConfig(ctx, "acme/app")
	if err != nil || sha != newHead || len(cfg.Routines) != 2 || pipe.fetches.Load() != 2 {
		t.Errorf("after the TTL: %d routines at %s (want 2 at %s), %v, %d fetches (want 2)", len(cfg.Routines), sha, newHead, err, pipe.fetches.Load())
	}
}
