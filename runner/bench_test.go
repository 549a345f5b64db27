package runner

import (
	"context"
	"crypto/sha1"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/sandbox"
)

// directRun is the baseline: one container created, started, waited for and removed through
// the Docker API, with exactly the sandbox's hardened configuration and nothing else: no
// workspace, no logs, no outputs.
func directRun(ctx context.Context, b *testing.B, r *dockerRig, runID, ws, out string) {
	cfg, hc, nc := r.sb.ContainerConfig(&sandbox.Spec{
		RunID: runID, JobID: "direct", Image: dockertest.TestAgentTag, Argv: []string{"/testagent"},
		WorkspaceDir: ws, OutputDir: out, Network: sandbox.Network{Mode: sandbox.NetworkNone},
		Resources: sandbox.Resources{CPUs: 1, Memory: 64 << 20, Pids: 64},
	})
	dockertest.RunDirect(ctx, b, r.sb.Client(), cfg, hc, nc)
}

// cpuTime is the CPU time used by this process and its waited-for children.
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

// directBatch runs n direct containers, parallel at a time, and returns the wall time.
func directBatch(b *testing.B, r *dockerRig, n, parallel int) time.Duration {
	ws, out := b.TempDir(), b.TempDir()
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	start := time.Now()
	for range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			directRun(b.Context(), b, r, r.runID, ws, out)
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// engineBatch runs one routine of n trivial agents (a matrix when n > 1) with max-parallel
// through the engine as `runner exec` wires it, and returns the wall time.
func engineBatch(b *testing.B, r *dockerRig, n, parallel int) time.Duration {
	body := "agents:\n  a:\n    command: [\"/testagent\"]\n"
	if n > 1 {
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprint(i)
		}
		body += fmt.Sprintf("    matrix: {i: [%s]}\n    max-parallel: %d\n", strings.Join(items, ", "), parallel)
	}
	p := routine(b, "defaults: {image: agentrunner/testagent:dev, resources: {memory: 64m, pids: 64}}\n"+body, r.sha)
	dir := b.TempDir()
	start := time.Now()
	res, err := r.eng.Run(b.Context(), &reporters.RunInfo{ID: r.runID, Repo: "o/r", Plan: p}, RunOptions{Dir: dir})
	took := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if res.Conclusion != result.ConclusionSuccess || len(res.Jobs) != n {
		b.Fatalf("run: %s with %d jobs\n%s", res.Conclusion, len(res.Jobs), res.Report)
	}
	return took
}

// benchEngineVsDirect alternates rounds of the engine and the direct baseline, so that drift
// in the Docker engine's speed hits both, and reports both and their ratio.
func benchEngineVsDirect(b *testing.B, n, parallel, rounds int) {
	r := newDockerRig(b)
	r.eng.Reporter = nil
	r.eng.MaxAgents = parallel
	directBatch(b, r, 1, 1) // warm the engine and the image cache
	engineBatch(b, r, 1, 1)
	var viaEngine, viaAPI, cpuEngine, cpuAPI time.Duration
	b.ResetTimer()
	for range b.N {
		for range rounds {
			c := cpuTime()
			viaAPI += directBatch(b, r, n, parallel)
			c2 := cpuTime()
			viaEngine += engineBatch(b, r, n, parallel)
			cpuAPI += c2 - c
			cpuEngine += cpuTime() - c2
		}
	}
	b.StopTimer()
	total := float64(b.N * rounds)
	// The runner's own CPU time (with its git children), to tell engine overhead from Docker's.
	b.ReportMetric(cpuEngine.Seconds()*1000/total, "engine-cpu-ms")
	b.ReportMetric(cpuAPI.Seconds()*1000/total, "direct-cpu-ms")
	b.ReportMetric(viaEngine.Seconds()*1000/total, "engine-ms")
	b.ReportMetric(viaAPI.Seconds()*1000/total, "direct-ms")
	b.ReportMetric(viaEngine.Seconds()/viaAPI.Seconds(), "ratio")
}

// BenchmarkEngineOneTrivialAgent is issue 3's (a): one trivial agent through the engine
// (git workspace, sandbox, outputs, cleanup, as `runner exec` does) vs the same container
// driven directly through the Docker API. Goal: ratio ≤ 1.3.
func BenchmarkEngineOneTrivialAgent(b *testing.B) { benchEngineVsDirect(b, 1, 1, 8) }

// BenchmarkEngineFiftyAgents is issue 3's (c): 50 trivial agents with max-parallel 8 vs the
// same 50 containers driven directly 8 at a time. Goal: ratio ≤ 1.3.
func BenchmarkEngineFiftyAgents(b *testing.B) { benchEngineVsDirect(b, 50, 8, 1) }

// BenchmarkEngineTwoHundredAgents is issue 5's: 200 trivial sub-agents with max-parallel 8
// vs 200 direct containers 8 at a time. Goal: ratio ≤ 1.3. It takes about 4 minutes; leave
// it out with -bench 'Engine(One|Fifty)|PlanAndConsolidate'.
func BenchmarkEngineTwoHundredAgents(b *testing.B) { benchEngineVsDirect(b, 200, 8, 1) }

// patchWorkspaces hands out empty directories whose changes are a prepared patch per job.
type patchWorkspaces struct {
	dirWorkspaces
	patches map[string][]byte
}

func (p *patchWorkspaces) Create(ctx context.Context, runID, jobID, base string) (Workspace, error) {
	w, err := p.dirWorkspaces.Create(ctx, runID, jobID, base)
	if err != nil {
		return nil, err
	}
	return patchWorkspace{w.(*dirWorkspace), p.patches[jobID]}, nil
}

type patchWorkspace struct {
	*dirWorkspace
	patch []byte
}

func (w patchWorkspace) Changes(_ context.Context, patchFile string, _ Limits) (*result.Changes, error) {
	if err := os.WriteFile(patchFile, w.patch, 0o644); err != nil {
		return nil, err
	}
	return &result.Changes{PatchFile: patchFile, PatchSize: int64(len(w.patch))}, nil
}

// newFilePatch is what `git diff --full-index` prints for a new file.
func newFilePatch(path, content string) []byte {
	blob := sha1.Sum([]byte(fmt.Sprintf("blob %d\x00%s", len(content), content)))
	return fmt.Appendf(nil, "diff --git a/%[1]s b/%[1]s\nnew file mode 100644\nindex %[2]s..%[3]x\n--- /dev/null\n+++ b/%[1]s\n@@ -0,0 +1 @@\n+%[4]s",
		path, strings.Repeat("0", 40), blob, content)
}

// timedMerger measures the time spent consolidating.
type timedMerger struct {
	Merger
	took time.Duration
}

func (t *timedMerger) Merge(ctx context.Context, patches []NamedPatch) (*Merged, error) {
	start := time.Now()
	defer func() { t.took += time.Since(start) }()
	return t.Merger.Merge(ctx, patches)
}

// BenchmarkPlanAndConsolidate200 is issue 5's second goal: planning and consolidation of a
// 200-agent run without containers (fake sandbox) under 1 s: plan.Build, the dynamic
// expansion to 200 instances, the engine's bookkeeping, and the real GitMerger merging 200
// small non-conflicting patches. The baseline is `git apply --cached` of the same 200 patches
// as one, the least any consolidation must cost.
func BenchmarkPlanAndConsolidate200(b *testing.B) {
	repo, sha := gitRepo(b)
	tasks := make([]string, 200)
	patches := map[string][]byte{}
	var all []byte
	for i := range tasks {
		tasks[i] = fmt.Sprintf(`"t%03d"`, i)
		patch := newFilePatch(fmt.Sprintf("audit/t%03d.md", i), fmt.Sprintf("checked t%03d\n", i))
		patches[fmt.Sprintf("audit[t%03d]", i)] = patch
		all = append(all, patch...)
	}
	body := `
agents:
  plan:
    command: ["/testagent", "output-json", 'tasks=[` + strings.Join(tasks, ",") + `]']
  audit:
    needs: [plan]
    matrix: {task: "${{ fromJSON(needs.plan.outputs.tasks) }}"}
    max-parallel: 8
    changes: keep
    command: ["/testagent", "output", "task=${{ matrix.task }}"]
`
	var planTook, runTook, mergeTook, baseTook time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		p := routine(b, body, sha)
		planTook += time.Since(start)

		tm := &timedMerger{Merger: &GitMerger{RepoDir: repo, BaseSHA: sha}}
		eng := &Engine{Sandbox: &fakeSandbox{}, Workspaces: &patchWorkspaces{dirWorkspaces{root: b.TempDir()}, patches}, Merger: tm, MaxAgents: 8}
		start = time.Now()
		res, err := eng.Run(b.Context(), &reporters.RunInfo{ID: "bench", Plan: p}, RunOptions{Dir: b.TempDir()})
		runTook += time.Since(start)
		mergeTook += tm.took
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Applied) != 200 || len(res.Files) != 200 || res.Conclusion != result.ConclusionSuccess {
			b.Fatalf("applied %d, files %d, %s: %s", len(res.Applied), len(res.Files), res.Conclusion, res.Error)
		}

		start = time.Now()
		gitApplyAll(b, repo, sha, all)
		baseTook += time.Since(start)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(planTook.Seconds()*1000/n, "plan-ms")
	b.ReportMetric(mergeTook.Seconds()*1000/n, "merge-ms")
	b.ReportMetric((planTook+runTook).Seconds()*1000/n, "plan+run+merge-ms")
	b.ReportMetric(baseTook.Seconds()*1000/n, "one-apply-ms")
	b.ReportMetric(mergeTook.Seconds()/baseTook.Seconds(), "merge/one-apply")
}

// gitApplyAll applies patch to a scratch index of repo at sha.
func gitApplyAll(b *testing.B, repo, sha string, patch []byte) {
	idx := filepath.Join(b.TempDir(), "index")
	for _, args := range [][]string{{"read-tree", sha}, {"apply", "--cached", "-"}, {"write-tree"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_INDEX_FILE="+idx)
		if args[0] == "apply" {
			cmd.Stdin = strings.NewReader(string(patch))
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
}

// BenchmarkOrchestratedTwoHundred is issue 15's: an orchestrator (the test agent, in Docker)
// writes a 200-agent workflow; the time from its exit to the last of the 200 containers having
// started, against the same 200 agents committed as a routine, from the run's start to its
// last container's start, measured alternately in the same run. Goal: ratio ≤ 1.1. About a
// minute per round; -bench 'Engine(One|Fifty)' leaves it out.
func BenchmarkOrchestratedTwoHundred(b *testing.B) {
	r := newDockerRig(b)
	r.eng.Reporter = nil
	r.eng.MaxAgents = 8
	items := make([]string, 200)
	for i := range items {
		items[i] = fmt.Sprint(i)
	}
	agents := "agents:\n  a:\n    command: [\"/testagent\"]\n    matrix: {i: [" + strings.Join(items, ", ") + "]}\n"
	defaults := "defaults: {image: agentrunner/testagent:dev, resources: {memory: 64m, pids: 64}}\n"
	committed := routine(b, defaults+agents, r.sha)
	orchestrated := routine(b, defaults+"agents:\n  lead:\n    orchestrate: {max-agents: 200, max-instances: 200}\n    command: [\"/testagent\", \"workflow\", "+
		strconv.Quote(agents)+"]\n", r.sha)
	lastStart := func(res *result.Run, prefix string) time.Time {
		var last time.Time
		n := 0
		for _, j := range res.Jobs {
			if strings.HasPrefix(j.ID, prefix) {
				n++
				if j.Started.After(last) {
					last = j.Started
				}
			}
		}
		if n != 200 {
			b.Fatalf("%d jobs under %q, want 200: %s\n%s", n, prefix, res.Conclusion, res.Report)
		}
		return last
	}
	run := func(p *plan.Run) *result.Run {
		res, err := r.eng.Run(b.Context(), &reporters.RunInfo{ID: r.runID, Repo: "o/r", Plan: p}, RunOptions{Dir: b.TempDir()})
		if err != nil || res.Conclusion != result.ConclusionSuccess {
			b.Fatalf("run: %v %s\n%s", err, res.Conclusion, res.Report)
		}
		return res
	}
	var viaWorkflow, viaRoutine time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		res := run(committed)
		viaRoutine += lastStart(res, "a[").Sub(start)
		res = run(orchestrated)
		viaWorkflow += lastStart(res, "lead/a[").Sub(res.Job("lead").Finished)
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(viaWorkflow.Seconds()/n, "orchestrated-s")
	b.ReportMetric(viaRoutine.Seconds()/n, "committed-s")
	b.ReportMetric(viaWorkflow.Seconds()/viaRoutine.Seconds(), "ratio")
}
