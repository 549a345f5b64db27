package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gopkg.in/yaml.v3"
)

// writeRoutines writes n realistic routine files: triggers, defaults, a planner, a matrix
// fan-out, replicas with a vote, and a consolidating agent.
func writeRoutines(tb testing.TB, dir string, n int) {
	tb.Helper()
	for i := range n {
		var b strings.Builder
		fmt.Fprintf(&b, `# yaml-language-server: $schema=../schema/agents.schema.json
description: generated routine %d
on:
  pull_request: {types: [opened, synchronize], branches: [main, "release/**"], paths: ["src/**", "!src/gen/**"]}
  push: {branches: [main], paths-ignore: ["docs/**"]}
  schedule: [{cron: "%d 3 * * 1-5", timezone: Europe/Berlin}]
  dispatch: {inputs: {scope: {default: all, options: [all, api, web]}}}
concurrency: {group: "r%d-${{ event.pull_request.number }}", cancel-in-progress: true}
secrets: [ANTHROPIC_API_KEY, OPENAI_API_KEY]
env: {LOG_LEVEL: debug, ROUTINE_INDEX: %d}
defaults:
  image: agents/claude:1
  timeout: 30m
  resources: {cpus: 1, memory: 2g, pids: 512}
  network: {allow: ["api.anthropic.com:443", "api.openai.com:443"]}
agents:
  plan:
    uses: claude-code
    prompt: "Split the work for ${{ inputs.scope }} into tasks; write outputs.tasks"
    outputs: [tasks]
    secrets: [ANTHROPIC_API_KEY]
`, i, i%60, i, i)
		for j := range 4 {
			fmt.Fprintf(&b, `  work%d:
    needs: [plan]
    uses: codex
    with: {model: o4-mini, reasoning: high}
    matrix:
      task: "${{ fromJSON(needs.plan.outputs.tasks) }}"
      os: [linux, mac]
      include: [{os: linux, extra: true}]
    max-parallel: 8
    prompt: |
      Work on ${{ matrix.task }} (${{ matrix.os }}), part %d.
      Fix what you find and explain it in report.md.
    changes: keep
    timeout: 45m
    resources: {memory: 3g}
`, j, j)
		}
		b.WriteString(`  verify:
    needs: [work0, work1, work2, work3]
    uses: claude-code
    replicas: 3
    quorum: 2
    vote: verdict
    outputs: [verdict]
    prompt: "Do the changes hold? outputs.verdict = yes|no"
  report:
    needs: [verify]
    if: "${{ always() }}"
    command: [sh, -c, "cat $AGENT_OUTPUT_DIR/prompt.md > $AGENT_OUTPUT_DIR/report.md"]
    image: alpine:3
    network: none
publish:
  check: true
  pull-request: {title: "Fixes", draft: true, labels: [automated]}
  comment: true
`)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("routine-%03d.yaml", i)), []byte(b.String()), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkLoadValidate loads and validates 200 routine files (7 agents each) from disk.
// The baseline is yaml.v3 alone parsing the same bytes into nodes, which the loader must do
// anyway; "x-yaml" is the loader's cost relative to it. cpu-ms/op is process CPU time, which
// stays meaningful when other processes share the cores.
func BenchmarkLoadValidate(b *testing.B) {
	dir := b.TempDir()
	writeRoutines(b, dir, 200)
	var data [][]byte
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		d, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		data = append(data, d)
	}
	var baseline float64
	b.Run("yaml-parse-baseline", func(b *testing.B) {
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			for _, d := range data {
				var n yaml.Node
				if err := yaml.Unmarshal(d, &n); err != nil {
					b.Fatal(err)
				}
			}
		}
		baseline = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(float64(cpuTime()-cpu)/1e6/float64(b.N), "cpu-ms/op")
	})
	b.Run("load-validate", func(b *testing.B) {
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			cfg, err := Load(dir)
			if err != nil {
				b.Fatal(err)
			}
			if len(cfg.Routines) != 200 {
				b.Fatalf("loaded %d routines", len(cfg.Routines))
			}
		}
		perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(float64(cpuTime()-cpu)/1e6/float64(b.N), "cpu-ms/op")
		if baseline > 0 {
			b.ReportMetric(perOp/baseline, "x-yaml")
		}
	})
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func TestBenchmarkRoutinesAreValid(t *testing.T) {
	dir := t.TempDir()
	writeRoutines(t, dir, 3)
	cfg, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(cfg.Routines[0].Agents); n != 7 {
		t.Errorf("agents per routine = %d, want 7", n)
	}
}
