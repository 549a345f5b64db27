package workspace

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// changesChildEnv makes the test binary a child that collects one large change and reports
// its own peak memory: a process of its own, so nothing else of the benchmark counts.
const changesChildEnv = "AGENTRUNNER_CHANGES_MEMORY_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(changesChildEnv); mode != "" {
		if err := changesChild(mode); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// changeMemory is what a child measured.
type changeMemory struct {
	Peak  int64 `json:"peak"`  // growth of the resident set's high-water mark while collecting
	Patch int64 `json:"patch"` // size of the patch
}

// procStatus reads a kB field of /proc/self/status, in bytes.
func procStatus(field string) (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// changesChild collects a 100 MiB change: mode stream is Changes as it is (the patch streamed
// to a file); mode buffer is the baseline, the same patch read into memory as git's output.
func changesChild(mode string) error {
	ctx := context.Background()
	tmp, err := os.MkdirTemp("", "changes-memory-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "src")
	for _, args := range [][]string{{"init", "-q", src}, {"-C", src, "commit", "-q", "--allow-empty", "-m", "empty"}} {
		if out, err := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %v\n%s", args, err, out)
		}
	}
	m, err := NewManager(filepath.Join(tmp, "data"))
	if err != nil {
		return err
	}
	defer m.Close()
	w, err := m.Create(ctx, Source{RepoDir: src}, "bench", "big", nil)
	if err != nil {
		return err
	}
	defer w.Remove(ctx)
	// 100 MiB of text lines, written a line at a time so that writing it costs no memory.
	f, err := os.Create(filepath.Join(w.Path(), "big.txt"))
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	for i := 0; i < 100<<20/64; i++ {
		fmt.Fprintf(bw, "%063d\n", i)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	f.Close()
	limits := ChangeLimits{File: 1 << 30, Patch: 1 << 30}
	patch := filepath.Join(tmp, "changes.patch")
	var tree string
	if mode == "buffer" {
		// The tree is hashed first; only reading the patch back is measured.
		c, err := w.Changes(ctx, ChangesOptions{PatchFile: patch, Limits: limits})
		if err != nil {
			return err
		}
		tree = c.Tree
	}
	runtime.GC()
	// Resetting the high-water mark to the current resident set (Linux 4.0+).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset the peak resident set: %w", err)
	}
	before, err := procStatus("VmHWM")
	if err != nil {
		return err
	}
	var size int64
	switch mode {
	case "stream":
		c, err := w.Changes(ctx, ChangesOptions{PatchFile: patch, Limits: limits})
		if err != nil {
			return err
		}
		size = c.PatchSize
	case "buffer":
		var buf bytes.Buffer
		g := w.m.git.withEnv("GIT_DIR="+w.private, "GIT_WORK_TREE="+w.path)
		if _, size, err = diffTrees(ctx, g, w.path, w.base, tree, &buf, 0); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	peak, err := procStatus("VmHWM")
	if err != nil {
		return err
	}
	// The kernel syncs its per-thread counters in batches: a growth below one batch may read
	// as a slight drop.
	return json.NewEncoder(os.Stdout).Encode(changeMemory{Peak: max(0, peak-before), Patch: size})
}

// measureChanges runs a child in mode and returns what it measured.
func measureChanges(b *testing.B, mode string) changeMemory {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), changesChildEnv+"="+mode)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("child %s: %v\n%s", mode, err, stderr.String())
	}
	var m changeMemory
	if err := json.Unmarshal(out, &m); err != nil {
		b.Fatalf("child %s printed %q: %v", mode, out, err)
	}
	return m
}

// BenchmarkChangesMemory measures the peak memory of collecting a 100 MiB change (a new file
// of 100 MiB of text, a patch a little larger), against the baseline of reading the same patch
// into memory as the runner once did. Goal: under 64 MB over the patch's size; streamed, the
// peak does not depend on the patch's size at all.
func BenchmarkChangesMemory(b *testing.B) {
	var stream, buffer changeMemory
	for b.Loop() {
		stream = measureChanges(b, "stream")
		buffer = measureChanges(b, "buffer")
	}
	const mb = 1 << 20
	b.ReportMetric(float64(stream.Peak)/mb, "peak-MB")
	b.ReportMetric(float64(buffer.Peak)/mb, "baseline-peak-MB")
	b.ReportMetric(float64(stream.Patch)/mb, "patch-MB")
	b.ReportMetric(float64(stream.Peak)/float64(buffer.Peak), "ratio")
	if stream.Peak-stream.Patch > 64*mb {
		b.Errorf("collecting the change took %d MB over its %d MB patch; want under 64", stream.Peak/mb, stream.Patch/mb)
	}
}
