package plan

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/config"
)

// routineFile is a realistic generated routine: triggers with filters, a concurrency group,
// a static matrix, replicas, a dynamic matrix and several expressions.
func routineFile(i int) string {
	return fmt.Sprintf(`name: routine-%[1]d
description: generated routine %[1]d
on:
  push: {branches: [main, "release/**"], paths: ["src/%[1]d/**", "!src/%[1]d/gen/**"]}
  pull_request: {types: [opened, synchronize], branches: [main]}
  schedule: [{cron: "0 3 * * 1-5"}]
concurrency: {group: "r%[1]d-${{ event.ref }}", cancel-in-progress: true}
secrets: [ANTHROPIC_API_KEY]
env: {AREA: "src/%[1]d"}
defaults:
  image: agents/claude:1
  timeout: 30m
  resources: {cpus: 1, memory: 2g, pids: 512}
  network: {allow: ["api.anthropic.com:443"]}
agents:
  plan:
    uses: claude-code
    prompt: "Plan the work in ${{ env.AREA }} at ${{ event.sha }}; write outputs.tasks"
    outputs: [tasks]
  lint:
    command: [lint, "--dir", "${{ env.AREA }}", "--os=${{ matrix.os }}"]
    image: tools/lint:1
    matrix:
      os: [linux, mac]
      go: ["1.25", "1.26"]
      exclude: [{os: mac, go: "1.25"}]
  audit:
    needs: [plan]
    uses: claude-code
    matrix: {task: "${{ fromJSON(needs.plan.outputs.tasks) }}"}
    prompt: "Audit ${{ matrix.task }} in ${{ env.AREA }}"
    changes: keep
  verify:
    needs: [audit, lint]
    if: "${{ success() && needs.audit.result == 'success' }}"
    uses: claude-code
    replicas: 3
    quorum: 2
    vote: verdict
    prompt: "Check ${{ join(needs.audit.outputs.summary, ', ') }}"
publish:
  check: true
  pull-request: {title: "Fixes for ${{ routine.name }}", draft: true}
`, i)
}

func writeRoutines(b *testing.B, n int) string {
	dir := b.TempDir()
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("r%03d.yaml", i)), []byte(routineFile(i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkLoadValidatePlan is config.Load + Compile + Build of 200 routine files for a push
// event that starts every routine. It reports the load alone as a baseline (load_ms) and the
// share of the total that planning adds (plan_share).
func BenchmarkLoadValidatePlan(b *testing.B) {
	dir := writeRoutines(b, 200)
	ev := pushEvent()
	ev.ChangedFiles = nil // unknown: path filters then run, so every routine is planned
	var loadTotal time.Duration
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		cfg, err := config.Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		loadTotal += time.Since(start)
		if errs := Compile(cfg); len(errs) > 0 {
			b.Fatal(errs)
		}
		p, err := Build(cfg, ev, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Runs) != 200 {
			b.Fatalf("planned %d runs, want 200", len(p.Runs))
		}
	}
	b.StopTimer()
	// The machine is shared: CPU time per op is the honest single-core figure.
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N)/1e6, "cpu_ms")
	perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	load := float64(loadTotal.Nanoseconds()) / float64(b.N)
	b.ReportMetric(load/1e6, "load_ms")
	b.ReportMetric(perOp/1e6, "total_ms")
	b.ReportMetric((perOp-load)/perOp, "plan_share")
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkExpand200 expands a dynamic matrix of 200 tasks (resolving 200 prompts and argv)
// the way the engine does when the planner agent finishes. Baseline: expanding the same node's
// one-instance preview (preview_ns), to show the cost per instance.
func BenchmarkExpand200(b *testing.B) {
	dir := writeRoutines(b, 1)
	cfg, err := config.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	p, err := Build(cfg, pushEvent(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	n := node(b, p, "audit")
	tasks := make([]any, 200)
	for i := range tasks {
		tasks[i] = fmt.Sprintf("package internal/pkg%03d: check error handling and fix what is wrong", i)
	}
	st := State{Needs: map[string]NeedResult{"plan": {Result: ResultSuccess, Outputs: map[string]any{"tasks": tasks}}}}
	start := time.Now()
	const previews = 100
	for range previews {
		if _, err := n.compiled.expand(nil, true); err != nil {
			b.Fatal(err)
		}
	}
	preview := float64(time.Since(start).Nanoseconds()) / previews
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		insts, err := n.Expand(st)
		if err != nil {
			b.Fatal(err)
		}
		if len(insts) != 200 {
			b.Fatalf("got %d instances", len(insts))
		}
	}
	b.StopTimer()
	b.ReportMetric(preview, "preview_ns")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/200, "ns/instance")
}
