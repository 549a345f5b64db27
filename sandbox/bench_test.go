package sandbox_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/sandbox"
)

// viaSandbox runs spec through the Sandbox: Prepare, Run, Destroy.
func viaSandbox(ctx context.Context, b *testing.B, sb *sandbox.Docker, spec *sandbox.Spec) {
	h, err := sb.Prepare(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	res, err := sb.Run(ctx, h, io.Discard)
	if err != nil || res.Outcome != sandbox.Success {
		b.Fatalf("run: %v %+v", err, res)
	}
	if err := sb.Destroy(ctx, h); err != nil {
		b.Fatal(err)
	}
}

// direct is the baseline: the same container created, started, waited for and removed
// through the Docker API, with nothing else.
func direct(ctx context.Context, b *testing.B, sb *sandbox.Docker, spec *sandbox.Spec) {
	cfg, hc, nc := sb.ContainerConfig(spec)
	dockertest.RunDirect(ctx, b, sb.Client(), cfg, hc, nc)
}

type runner func(context.Context, *testing.B, *sandbox.Docker, *sandbox.Spec)

// batch runs n trivial agents, parallel at a time, and returns the wall time.
func batch(b *testing.B, sb *sandbox.Docker, runID string, n, parallel int, run runner) time.Duration {
	specs := make([]*sandbox.Spec, n)
	for i := range specs {
		specs[i] = newSpec(b, runID, "exit", "0")
		specs[i].JobID = fmt.Sprintf("bench[%d]", i)
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	start := time.Now()
	for _, spec := range specs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			run(b.Context(), b, sb, spec)
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// benchCompare measures the Sandbox against the direct baseline in the same run, alternating
// rounds so that drift in the engine's speed hits both, and reports both and their ratio.
func benchCompare(b *testing.B, n, parallel, rounds int) {
	sb := newDocker(b)
	runID := dockertest.RunID(b)
	batch(b, sb, runID, 1, 1, direct) // warm the engine and the image cache
	batch(b, sb, runID, 1, 1, viaSandbox)
	var viaSB, viaAPI time.Duration
	b.ResetTimer()
	for range b.N {
		for range rounds {
			viaAPI += batch(b, sb, runID, n, parallel, direct)
			viaSB += batch(b, sb, runID, n, parallel, viaSandbox)
		}
	}
	b.StopTimer()
	total := float64(b.N * rounds)
	b.ReportMetric(viaSB.Seconds()*1000/total, "sandbox-ms")
	b.ReportMetric(viaAPI.Seconds()*1000/total, "direct-ms")
	b.ReportMetric(viaSB.Seconds()/viaAPI.Seconds(), "ratio")
}

// BenchmarkOneTrivialAgent: one trivial agent through the Sandbox (prepare, run, destroy) vs
// the same container driven directly through the Docker API. Goal: ratio ≤ 1.3.
func BenchmarkOneTrivialAgent(b *testing.B) { benchCompare(b, 1, 1, 8) }

// BenchmarkFiftyAgentsEightAtATime: 50 trivial agents, 8 at a time, through the Sandbox vs
// directly through the Docker API. Goal: ratio ≤ 1.3.
func BenchmarkFiftyAgentsEightAtATime(b *testing.B) { benchCompare(b, 50, 8, 1) }
