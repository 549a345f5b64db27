package runner

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

func TestNeedsOutputsFlowDownTheDAG(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := routine(t, `
agents:
  plan:
    command: ["/testagent", "output", "word=hello", "report", "planned", "sleep", "20ms"]
  use:
    needs: [plan]
    command: ["/testagent", "output", "got=${{ needs.plan.outputs.word }}/${{ needs.plan.result }}", "output", "rep=${{ needs.plan.report }}"]
`, "")
	res := h.run(t, t.Context(), p, nil)
	if res.Conclusion != result.ConclusionSuccess {
		t.Fatalf("conclusion = %s, want success\n%s", res.Conclusion, res.Report)
	}
	use := jobOf(t, res, "use")
	if got := use.Outputs["got"]; got != "hello/success" {
		t.Errorf("use saw needs.plan = %q, want hello/success", got)
	}
	if got := use.Outputs["rep"]; got != "planned\n" {
		t.Errorf("use saw needs.plan.report = %q, want the report", got)
	}
	if got := h.sb.started(); !slices.Equal(got, []string{"plan", "use"}) {
		t.Errorf("start order = %v, want plan then use", got)
	}
	if plan, use := jobOf(t, res, "plan"), jobOf(t, res, "use"); use.Started.Before(plan.Finished) {
		t.Errorf("use started at %v, before plan finished at %v", use.Started, plan.Finished)
	}
}

// Each job's result says what its workspace took on disk once its agent ended.
func TestJobResultHasItsWorkspacesDiskUse(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	res := h.run(t, t.Context(), routine(t, "agents:\n  a:\n    command: [\"/testagent\", \"exit\", \"3\"]\n", ""), nil)
	if j := jobOf(t, res, "a"); j.DiskUsage != fakeDiskUsage {
		t.Errorf("disk usage %d, want the workspace's %d (also for a failed agent)", j.DiskUsage, fakeDiskUsage)
	}
}

func TestFanOutExposesTheListOfOutputsAndCounts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := routine(t, `
agents:
  plan:
    command: ["/testagent", "output-json", 'tasks=["a","b","c"]']
  audit:
    needs: [plan]
    matrix: {task: "${{ fromJSON(needs.plan.outputs.tasks) }}"}
    command: ["/testagent", "output", "name=${{ matrix.task }}"]
  sum:
    needs: [audit]
    command: ["/testagent", "output", "names=${{ toJSON(needs.audit.outputs) }}", "output", "ok=${{ needs.audit.counts.success }}", "output", "result=${{ needs.audit.result }}"]
`, "")
	res := h.run(t, t.Context(), p, nil)
	if res.Conclusion != result.ConclusionSuccess {
		t.Fatalf("conclusion = %s\n%s", res.Conclusion, res.Report)
	}
	for _, id := range []string{"audit[a]", "audit[b]", "audit[c]"} {
		jobOf(t, res, id)
	}
	sum := jobOf(t, res, "sum")
	want := map[string]any{"names": `[{"name":"a"},{"name":"b"},{"name":"c"}]`, "ok": "3", "result": "success"}
	for k, v := range want {
		if compact(sum.Outputs[k]) != v {
			t.Errorf("sum.outputs.%s = %v, want %v", k, sum.Outputs[k], v)
		}
	}
	if c := agentOf(t, res, "audit").Counts["success"]; c != 3 {
		t.Errorf("audit counts success = %d, want 3", c)
	}
}

func TestIfConditions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		firstFails bool
		cond       string
		wantResult string
	}{
		{"a dependent of a failed agent is skipped", true, "", plan.ResultSkipped},
		{"failure() runs after a failure", true, "${{ failure() }}", plan.ResultSuccess},
		{"failure() is skipped after a success", false, "${{ failure() }}", plan.ResultSkipped},
		{"always() runs after a failure", true, "${{ always() }}", plan.ResultSuccess},
		{"an expression on the need's result", false, "${{ needs.first.result == 'success' }}", plan.ResultSuccess},
		{"a false expression skips", false, "${{ needs.first.outputs.x == 'nope' }}", plan.ResultSkipped},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code := "0"
			if tc.firstFails {
				code = "3"
			}
			ifLine := ""
			if tc.cond != "" {
				ifLine = fmt.Sprintf("    if: %q\n", tc.cond)
			}
			h := newHarness(t)
			p := routine(t, `
agents:
  first:
    command: ["/testagent", "output", "x=1", "exit", "`+code+`"]
  second:
    needs: [first]
`+ifLine+`    command: ["/testagent", "print", "ran"]
`, "")
			res := h.run(t, t.Context(), p, nil)
			if got := agentOf(t, res, "second").Result; got != tc.wantResult {
				t.Errorf("second = %s, want %s", got, tc.wantResult)
			}
			ran := slices.Contains(h.sb.started(), "second")
			if ran != (tc.wantResult == plan.ResultSuccess) {
				t.Errorf("second ran = %v with result %s", ran, tc.wantResult)
			}
			wantConclusion := result.ConclusionSuccess
			if tc.firstFails {
				wantConclusion = result.ConclusionFailure
			}
			if res.Conclusion != wantConclusion {
				t.Errorf("conclusion = %s, want %s", res.Conclusion, wantConclusion)
			}
			if tc.firstFails && jobOf(t, res, "first").ExitCode != 3 {
				t.Errorf("first exit code = %d, want 3", jobOf(t, res, "first").ExitCode)
			}
		})
	}
}

func TestHundredWayFanOutHonoursMaxParallel(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var tasks []string
	for i := range 100 {
		tasks = append(tasks, fmt.Sprintf(`"t%03d"`, i))
	}
	p := routine(t, `
agents:
  plan:
    command: ["/testagent", "output-json", 'tasks=[`+strings.Join(tasks, ",")+`]']
  audit:
    needs: [plan]
    matrix: {task: "${{ fromJSON(needs.plan.outputs.tasks) }}"}
    max-parallel: 7
    command: ["/testagent", "sleep", "30ms", "output", "t=${{ matrix.task }}"]
  after:
    needs: [audit]
    command: ["/testagent", "output", "n=${{ needs.audit.counts.success }}"]
`, "")
	res := h.run(t, t.Context(), p, nil)
	if res.Conclusion != result.ConclusionSuccess {
		t.Fatalf("conclusion = %s", res.Conclusion)
	}
	if got := len(agentOf(t, res, "audit").Jobs); got != 100 {
		t.Fatalf("audit ran %d instances, want 100", got)
	}
	// A loaded machine may not refill every slot at once; it must never exceed them.
	if peak := h.sb.peak.Load(); peak > 7 || peak < 5 {
		t.Errorf("peak concurrency = %d, want max-parallel 7 (at least 5 seen)", peak)
	}
	if got := jobOf(t, res, "after").Outputs["n"]; got != "100" {
		t.Errorf("after saw %v successes, want 100", got)
	}
	// Results come back in instance order, whatever order they finished in.
	if a := agentOf(t, res, "audit"); a.Jobs[0] != "audit[t000]" || a.Jobs[99] != "audit[t099]" {
		t.Errorf("audit jobs out of order: %v … %v", a.Jobs[0], a.Jobs[99])
	}
}

func TestMaxAgentsBoundsTheWholeEngine(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.eng.MaxAgents = 3
	p := routine(t, `
agents:
  a:
    matrix: {i: [1, 2, 3, 4, 5, 6]}
    command: ["/testagent", "sleep", "20ms"]
  b:
    matrix: {i: [1, 2, 3, 4, 5, 6]}
    command: ["/testagent", "sleep", "20ms"]
`, "")
	// Two runs at once on one engine share its limit.
	done := make(chan *result.Run, 2)
	for range 2 {
		go func() { done <- h.run(t, t.Context(), p, nil) }()
	}
	for range 2 {
		if res := <-done; res.Conclusion != result.ConclusionSuccess {
			t.Errorf("conclusion = %s", res.Conclusion)
		}
	}
	if peak := h.sb.peak.Load(); peak != 3 {
		t.Errorf("peak concurrency = %d, want MaxAgents 3", peak)
	}
}

func TestWorkspacesArePreparedOnlyOneAhead(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.eng.MaxAgents = 3
	p := routine(t, `
agents:
  a:
    matrix: {i: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]}
    command: ["/testagent", "sleep", "10ms"]
`, "")
	if res := h.run(t, t.Context(), p, nil); res.Conclusion != result.ConclusionSuccess {
		t.Fatalf("conclusion = %s", res.Conclusion)
	}
	if peak := h.ws.peak.Load(); peak > 4 {
		t.Errorf("%d workspaces existed at once, want at most 3 running + 1 prepared", peak)
	}
}

func TestFailFast(t *testing.T) {
	t.Parallel()
	for _, failFast := range []bool{true, false} {
		t.Run(fmt.Sprintf("fail-fast %v", failFast), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			p := routine(t, fmt.Sprintf(`
agents:
  audit:
    matrix: {i: [1, 2, 3, 4, 5, 6]}
    max-parallel: 3
    fail-fast: %v
    command: ["/testagent", "sleep", "${{ matrix.i == 1 && '1ms' || '300ms' }}", "exit", "${{ matrix.i == 1 && 1 || 0 }}"]
`, failFast), "")
			start := time.Now()
			res := h.run(t, t.Context(), p, nil)
			took := time.Since(start)
			if res.Conclusion != result.ConclusionFailure {
				t.Errorf("conclusion = %s, want failure", res.Conclusion)
			}
			a := agentOf(t, res, "audit")
			if a.Result != plan.ResultFailure {
				t.Errorf("audit = %s, want failure", a.Result)
			}
			if jobOf(t, res, "audit[1]").Outcome != result.Failed {
				t.Errorf("audit[1] = %s, want failed", jobOf(t, res, "audit[1]").Outcome)
			}
			if failFast {
				if a.Counts["cancelled"] != 5 {
					t.Errorf("counts = %v, want the 5 others cancelled", a.Counts)
				}
				if c := jobOf(t, res, "audit[6]"); c.Outcome != result.Cancelled || !strings.Contains(c.Error, "fail-fast: audit[1] failed") {
					t.Errorf("audit[6] = %s %q, want cancelled by fail-fast naming audit[1]", c.Outcome, c.Error)
				}
				if took > 250*time.Millisecond {
					t.Errorf("fail-fast run took %v: the running instances were not stopped", took)
				}
			} else if a.Counts["success"] != 5 {
				t.Errorf("counts = %v, want the 5 others to succeed", a.Counts)
			}
		})
	}
}

func TestContinueOnError(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := routine(t, `
agents:
  flaky:
    continue-on-error: true
    matrix: {i: [1, 2]}
    command: ["/testagent", "exit", "${{ matrix.i }}"]
  next:
    needs: [flaky]
    command: ["/testagent", "output", "saw=${{ needs.flaky.result }}/${{ needs.flaky.counts.failed }}"]
`, "")
	res := h.run(t, t.Context(), p, nil)
	if res.Conclusion != result.ConclusionSuccess {
		t.Errorf("conclusion = %s, want success (continue-on-error)\n%s", res.Conclusion, res.Report)
	}
	if got := jobOf(t, res, "next").Outputs["saw"]; got != "success/2" {
		t.Errorf("next saw %v, want success/2", got)
	}
}

// voter makes replica r of agent name vote votes[r-1].
func voter(name string, votes ...string) func(in *plan.Instance) []string {
	return func(in *plan.Instance) []string {
		if in.Agent != name || in.Replica == 0 {
			return in.Argv
		}
		v := votes[in.Replica-1]
		if v == "fail" {
			return []string{"/testagent", "exit", "1"}
		}
		return []string{"/testagent", "output", "verdict=" + v, "report", "replica says " + v}
	}
}

func TestQuorum(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		votes       []string
		wantResult  string
		wantWinner  any
		wantDissent []string
		conclusion  result.Conclusion
	}{
		{"two of three agree", []string{"yes", "no", "yes"}, plan.ResultSuccess, "yes", []string{"verify#2 (verdict=no)"}, result.ConclusionSuccess},
		{"a failed replica dissents", []string{"fail", "yes", "yes"}, plan.ResultSuccess, "yes", []string{"verify#1 (failed)"}, result.ConclusionSuccess},
		{"no two agree", []string{"yes", "no", "maybe"}, plan.ResultNoQuorum, nil, []string{"verify#1 (verdict=yes)", "verify#2 (verdict=no)", "verify#3 (verdict=maybe)"}, result.ConclusionFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.sb.argv = voter("verify", tc.votes...)
			p := routine(t, `
agents:
  verify:
    replicas: 3
    quorum: 2
    vote: verdict
    command: ["/testagent"]
  accepted:
    needs: [verify]
    command: ["/testagent", "output", "v=${{ needs.verify.outputs.verdict }}"]
  rejected:
    needs: [verify]
    if: "${{ failure() && needs.verify.result == 'no_quorum' }}"
    command: ["/testagent", "print", "no quorum"]
`, "")
			res := h.run(t, t.Context(), p, nil)
			a := agentOf(t, res, "verify")
			if a.Result != tc.wantResult {
				t.Errorf("verify = %s, want %s", a.Result, tc.wantResult)
			}
			if a.Vote == nil {
				t.Fatal("verify has no vote")
			}
			if a.Vote.Winner != tc.wantWinner {
				t.Errorf("winner = %v, want %v", a.Vote.Winner, tc.wantWinner)
			}
			if !slices.Equal(a.Vote.Dissent, tc.wantDissent) {
				t.Errorf("dissent = %q, want %q", a.Vote.Dissent, tc.wantDissent)
			}
			if res.Conclusion != tc.conclusion {
				t.Errorf("conclusion = %s, want %s", res.Conclusion, tc.conclusion)
			}
			reached := tc.wantResult == plan.ResultSuccess
			if got := agentOf(t, res, "accepted").Result == plan.ResultSuccess; got != reached {
				t.Errorf("accepted ran = %v, want %v", got, reached)
			}
			if reached && jobOf(t, res, "accepted").Outputs["v"] != tc.wantWinner {
				t.Errorf("accepted saw verdict %v, want the winner", jobOf(t, res, "accepted").Outputs["v"])
			}
			if got := agentOf(t, res, "rejected").Result == plan.ResultSuccess; got == reached {
				t.Errorf("rejected (if no_quorum) ran = %v, want %v", got, !reached)
			}
			if !reached && !strings.Contains(res.Report, "no quorum") {
				t.Errorf("report does not say no quorum:\n%s", res.Report)
			}
		})
	}
}

func TestJudgeDecides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		verdict    string // the judge's output step
		wantResult string
		wantJob    string
		wantVal    any
	}{
		{"by replica number", "replica=2", plan.ResultSuccess, "verify#2", "b"},
		{"by vote value", "verdict=c", plan.ResultSuccess, "verify#3", "c"},
		{"without a verdict", "other=x", plan.ResultNoQuorum, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.sb.argv = voter("verify", "a", "b", "c")
			p := routine(t, `
agents:
  verify:
    replicas: 3
    quorum: 2
    vote: verdict
    judge: pick
    command: ["/testagent"]
  pick:
    needs: [verify]
    command: ["/testagent", "output", "seen=${{ toJSON(needs.verify.outputs) }}", "output", "`+tc.verdict+`"]
  after:
    needs: [verify]
    command: ["/testagent", "output", "v=${{ needs.verify.outputs.verdict }}"]
`, "")
			res := h.run(t, t.Context(), p, nil)
			if got := compact(jobOf(t, res, "pick").Outputs["seen"]); got != `[{"verdict":"a"},{"verdict":"b"},{"verdict":"c"}]` {
				t.Errorf("the judge saw %v, want every replica's verdict a,b,c", got)
			}
			a := agentOf(t, res, "verify")
			if a.Result != tc.wantResult {
				t.Fatalf("verify = %s, want %s", a.Result, tc.wantResult)
			}
			if a.Vote == nil || a.Vote.Judge != "pick" || a.Vote.WinningJob != tc.wantJob || a.Vote.Winner != tc.wantVal {
				t.Errorf("vote = %+v, want judge pick, winner %s = %v", a.Vote, tc.wantJob, tc.wantVal)
			}
			if tc.wantResult == plan.ResultSuccess {
				if got := jobOf(t, res, "after").Outputs["v"]; got != tc.wantVal {
					t.Errorf("after saw %v, want %v", got, tc.wantVal)
				}
				if res.Conclusion != result.ConclusionSuccess {
					t.Errorf("conclusion = %s", res.Conclusion)
				}
			} else if res.Conclusion != result.ConclusionFailure {
				t.Errorf("conclusion = %s, want failure without a verdict", res.Conclusion)
			}
		})
	}
}

func TestMalformedOutputsFailTheJob(t *testing.T) {
	t.Parallel()
	tests := []struct{ file, content, want string }{
		{"outputs.json", "[1, 2", "outputs.json must be a JSON object"},
		{"outputs.json", `["a list"]`, "outputs.json must be a JSON object"},
		{"findings.json", `{"path": 1}`, "findings.json must be a JSON list"},
	}
	for _, tc := range tests {
		t.Run(tc.file+" "+tc.content, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			p := routine(t, `
agents:
  a:
    command: ["/testagent", "write", '/agent/out/`+tc.file+`=`+tc.content+`']
`, "")
			res := h.run(t, t.Context(), p, nil)
			j := jobOf(t, res, "a")
			if j.Outcome != result.Failed || !strings.Contains(j.Error, tc.want) {
				t.Errorf("a = %s %q, want failed with %q", j.Outcome, j.Error, tc.want)
			}
			if res.Conclusion != result.ConclusionFailure || !strings.Contains(res.Report, tc.want) {
				t.Errorf("conclusion %s; the report must say why:\n%s", res.Conclusion, res.Report)
			}
		})
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	body := `
secrets: [TOKEN]
agents:
  a:
    secrets: [TOKEN]
    command: ["/testagent", "env"]
`
	t.Run("a missing secret fails the job and names it", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		res := h.run(t, t.Context(), routine(t, body, ""), nil)
		j := jobOf(t, res, "a")
		if j.Outcome != result.Error || !strings.Contains(j.Error, "TOKEN") || !strings.Contains(j.Error, "--secret") {
			t.Errorf("a = %s %q, want an error naming TOKEN and how to give it", j.Outcome, j.Error)
		}
		if h.sb.calls.Load() != 0 {
			t.Error("the agent ran without its secret")
		}
	})
	t.Run("a given secret reaches the agent", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		res := h.run(t, t.Context(), routine(t, body, ""), map[string]string{"TOKEN": "s3cr3t", "OTHER": "no"})
		j := jobOf(t, res, "a")
		// The log file, as the sandbox wrote it (the fake one does not mask): the result
		// itself masks every secret value.
		log, err := os.ReadFile(j.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		if j.Outcome != result.Success || !strings.Contains(string(log), "TOKEN=s3cr3t") || strings.Contains(string(log), "OTHER") {
			t.Errorf("a = %s, log %q: want TOKEN only", j.Outcome, log)
		}
		if !strings.Contains(j.LogTail, "TOKEN=***") {
			t.Errorf("log tail %q: want the value masked", j.LogTail)
		}
	})
}

func TestReporterUpdatesInOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := routine(t, `
agents:
  a:
    command: ["/testagent", "print", "a"]
  b:
    needs: [a]
    matrix: {i: [1, 2]}
    command: ["/testagent", "print", "b"]
`, "")
	res := h.run(t, t.Context(), p, nil)
	got := h.rec.kinds()
	want := []reporters.Kind{
		reporters.RunQueued, reporters.RunStarted,
		reporters.AgentExpanded, reporters.JobStarted, reporters.JobFinished, reporters.AgentFinished,
		reporters.AgentExpanded, reporters.JobStarted, reporters.JobStarted, reporters.JobFinished, reporters.JobFinished, reporters.AgentFinished,
		reporters.RunFinished,
	}
	// The two instances of b may interleave; compare with them sorted.
	norm := func(k []reporters.Kind) []reporters.Kind {
		k = slices.Clone(k)
		if len(k) > 10 {
			slices.Sort(k[7:11])
		}
		return k
	}
	if !slices.Equal(norm(got), norm(want)) {
		t.Errorf("updates =\n%v\nwant\n%v", got, want)
	}
	last := h.rec.updates[len(h.rec.updates)-1]
	if last.Result != res || last.Run == nil || last.Run.ID != "run1" {
		t.Errorf("RunFinished carries %+v, want the run's result", last)
	}
}

func TestRunWithEverythingSkippedStillStartsAndFinishes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := routine(t, `
agents:
  a:
    if: "${{ false }}"
    command: ["/testagent"]
`, "")
	res := h.run(t, t.Context(), p, nil)
	if res.Conclusion != result.ConclusionNeutral {
		t.Errorf("conclusion = %s, want neutral", res.Conclusion)
	}
	k := h.rec.kinds()
	if !slices.Contains(k, reporters.RunStarted) || k[len(k)-1] != reporters.RunFinished {
		t.Errorf("updates = %v", k)
	}
}

func TestCancellation(t *testing.T) {
	h := newHarness(t)
	p := routine(t, `
agents:
  slow:
    matrix: {i: [1, 2, 3, 4]}
    max-parallel: 2
    command: ["/testagent", "hold"]
  after:
    needs: [slow]
    command: ["/testagent"]
`, "")
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for h.sb.running.Load() < 2 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	res := h.run(t, ctx, p, nil)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("cancelled run took %v", took)
	}
	assertCancelled(t, res)
	if got := agentOf(t, res, "after").Result; got != plan.ResultCancelled && got != plan.ResultSkipped {
		t.Errorf("after = %s, want cancelled", got)
	}
	if k := h.rec.kinds(); k[len(k)-1] != reporters.RunFinished {
		t.Errorf("the reporter did not hear the end of a cancelled run: %v", k)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before the run, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// compact removes the whitespace of a toJSON rendering.
func compact(v any) string {
	s, _ := v.(string)
	return strings.Join(strings.Fields(s), "")
}

// A fanned-out agent with replicas votes per matrix combination: api's replicas agree among
// themselves, web's do not, and votes never mix across combinations.
func TestQuorumPerMatrixCombination(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.sb.argv = func(in *plan.Instance) []string {
		if in.Agent != "verify" {
			return in.Argv
		}
		v := map[string][]string{"api": {"yes", "yes", "no"}, "web": {"yes", "no", "maybe"}}[fmt.Sprint(in.Matrix["part"])][in.Replica-1]
		return []string{"/testagent", "output", "verdict=" + v}
	}
	p := routine(t, `
agents:
  verify:
    matrix: {part: [api, web]}
    replicas: 3
    quorum: 2
    vote: verdict
    command: ["/testagent"]
`, "")
	res := h.run(t, t.Context(), p, nil)
	a := agentOf(t, res, "verify")
	if a.Result != plan.ResultNoQuorum || len(a.Votes) != 2 {
		t.Fatalf("verify = %s with %d votes, want no_quorum with one vote per combination", a.Result, len(a.Votes))
	}
	api, web := a.Votes[0], a.Votes[1]
	if !api.Reached || api.Winner != "yes" || api.WinningJob != "verify[api]#1" || api.Tally["yes"] != 2 {
		t.Errorf("api vote = %+v, want yes by 2 from verify[api]#1", api)
	}
	if web.Reached || web.Tally["yes"] != 1 {
		t.Errorf("web vote = %+v, want no quorum counting only web's replicas", web)
	}
	if !strings.Contains(res.Report, "matrix map[part:web]): no quorum") {
		t.Errorf("the report should show each combination's vote:\n%s", res.Report)
	}
}
