package workspace

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkOverlay10k is the fan-out of issue 13 on a 10,000-file repository (45 MB of text
// files of 1.5 to 7.5 KB, generated once into the user's cache directory, 4 MB there): 50
// workspaces created, one file edited in each (written straight into the upper layer, as the
// kernel's overlay would: no Docker here), the patches taken and the workspaces removed, in
// overlay mode, against checkout mode measured in the same run on 10 workspaces and scaled to
// 50. Targets: the 50 jobs' work under 1 s, their extra disk under 50 MB. Cost: about a
// minute, mostly checkout mode's.
func BenchmarkOverlay10k(b *testing.B) {
	src, head := cachedRepo(b, "repo10k-v1.git", 10000, 1536, 6*1024)
	benchFanOut(b, src, head, 50, 10, func(i int) string { return repoPath(i * 199 % 10000) })
}

// BenchmarkOverlay100k is the same on a generated 100,000-file repository (0.9 GB of text
// files of 2 to 16 KB, 1.2 GB checked out): 200 overlay workspaces (targets: under 10 s,
// under 1 GB extra disk), against checkout mode measured on 2 workspaces and scaled to 200.
// The repository is generated once into the user's cache directory (agentrunner-bench, 44 MB
// there). Cost: 2 to 3 minutes a run (a minute more the first time) and 4 GB of free disk,
// so it runs only when the -bench pattern names it: -bench Overlay100k.
func BenchmarkOverlay100k(b *testing.B) {
	if !strings.Contains(flag.Lookup("test.bench").Value.String(), "100k") {
		b.Skip("costs minutes and 4 GB of disk: run it with -bench Overlay100k")
	}
	src, head := cachedRepo(b, "repo100k-v1.git", 100000, 2048, 14*1024)
	benchFanOut(b, src, head, 200, 2, func(i int) string { return repoPath(i * 499 % 100000) })
}

// benchFanOut creates jobs workspaces of src at head in each mode (checkout mode only
// checkoutJobs of them, scaled), edits the file edit(i) in workspace i, takes its patch and
// removes them all, and reports both modes' times, their ratio and their extra disk.
func benchFanOut(b *testing.B, src, head string, jobs, checkoutJobs int, edit func(i int) string) {
	_, srcInodes := diskUsage(b, src, nil)
	owner := benchOwner()
	type result struct {
		total, create, fill, changes, remove, drop time.Duration
		disk, shared                               int64
	}
	run := func(mode Mode, n int) result {
		root := filepath.Join(b.TempDir(), string(mode))
		m, err := NewManager(root, WithMode(mode))
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
		var r result
		ws := make([]*Workspace, n)
		start := time.Now()
		// The first job writes the shared checkout (overlay) while the others wait for it:
		// timed apart, as it happens once per commit.
		if ws[0], err = m.Create(b.Context(), Source{RepoDir: src, SHA: head}, "bench", "job0", owner); err != nil {
			b.Fatal(err)
		}
		r.fill = time.Since(start)
		parallel(b, n-1, func(i int) error {
			var err error
			ws[i+1], err = m.Create(b.Context(), Source{RepoDir: src, SHA: head}, "bench", fmt.Sprint("job", i+1), owner)
			return err
		})
		r.create = time.Since(start)
		parallel(b, n, func(i int) error {
			p := filepath.Join(ws[i].Path(), filepath.FromSlash(edit(i)))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte(fmt.Sprintf("package edited\n\n// by job %d\n", i)), 0o644); err != nil {
				return err
			}
			c, err := ws[i].Changes(b.Context(), ChangesOptions{})
			if err == nil && len(c.Files) != 1 {
				err = fmt.Errorf("job %d: %d files changed, want 1", i, len(c.Files))
			}
			return err
		})
		r.changes = time.Since(start) - r.create
		r.disk, _ = diskUsage(b, root, srcInodes)
		if l, ok := ws[0].Layers(); ok {
			r.shared, _ = diskUsage(b, l.Lower, srcInodes)
		}
		removeStart := time.Now()
		parallel(b, n, func(i int) error { return ws[i].Remove(b.Context()) })
		r.remove = time.Since(removeStart)
		// Until everything is deleted from disk: for overlay mode mostly the shared checkout,
		// which like its writing happens once per commit.
		m.Close()
		r.drop = time.Since(removeStart) - r.remove
		r.total = r.create + r.changes + r.remove + r.drop // not the disk measurement
		return r
	}
	var ov, co result
	for b.Loop() {
		ov = run(ModeOverlay, jobs)
		co = run(ModeCheckout, checkoutJobs)
	}
	scale := float64(jobs) / float64(checkoutJobs)
	coTotal := time.Duration(float64(co.total) * scale)
	b.ReportMetric(ov.total.Seconds(), "overlay-total-s")
	b.ReportMetric((ov.create + ov.remove - ov.fill).Seconds(), "overlay-create+remove-s")
	b.ReportMetric((ov.total - ov.fill - ov.drop).Seconds(), "overlay-per-job-work-s")
	b.ReportMetric(ov.fill.Seconds(), "overlay-shared-fill-s")
	b.ReportMetric(ov.drop.Seconds(), "overlay-final-delete-s")
	b.ReportMetric(float64((ov.create-ov.fill).Microseconds())/1000/float64(jobs-1), "overlay-create-ms/ws")
	b.ReportMetric(float64(ov.changes.Microseconds())/1000/float64(jobs), "overlay-changes-ms/ws")
	b.ReportMetric(float64(ov.remove.Microseconds())/1000/float64(jobs), "overlay-remove-ms/ws")
	b.ReportMetric(coTotal.Seconds(), "checkout-total-s")
	b.ReportMetric(float64(ov.total)/float64(coTotal), "overlay/checkout-time")
	b.ReportMetric(float64(ov.disk)/1e6, "overlay-extra-disk-MB")
	b.ReportMetric(float64(ov.shared)/1e6, "overlay-shared-MB")
	b.ReportMetric(float64(ov.disk-ov.shared)/1e6, "overlay-job-layers-MB")
	b.ReportMetric(float64(co.disk)*scale/1e6, "checkout-extra-disk-MB")
	b.ReportMetric(float64(ov.disk)/(float64(co.disk)*scale), "overlay/checkout-disk")
}

// parallel runs f(0..n-1) on 8 goroutines, failing the benchmark on the first error.
func parallel(b *testing.B, n int, f func(i int) error) {
	b.Helper()
	next := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// repoPath is the path of file i of a generated repository: directories of 100 files.
func repoPath(i int) string {
	return fmt.Sprintf("mod%03d/sub%d/file%06d.txt", i/100, i%100/10, i)
}

// cachedRepo returns the bare repository name of the user's cache directory, generated there
// with git fast-import on first use: one commit of n text files of minSize to minSize+span bytes.
func cachedRepo(b *testing.B, name string, n, minSize, span int) (string, string) {
	b.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(cache, "agentrunner-bench", name)
	if head, err := os.ReadFile(filepath.Join(dir, "agentrunner-complete")); err == nil {
		return dir, strings.TrimSpace(string(head))
	}
	b.Logf("generating the %d-file repository in %s (once)", n, dir)
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	testGit(b, b.TempDir(), "init", "-q", "--bare", dir)
	cmd := exec.Command("git", "fast-import", "--quiet", "--done")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"}
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(in, 1<<20)
	fmt.Fprintf(w, "commit refs/heads/main\ncommitter Bench <bench@example.com> 1700000000 +0000\ndata 10\ngenerated\n")
	var line strings.Builder
	for i := range n {
		size := minSize + (i*7919)%span
		line.Reset()
		for n := 0; line.Len() < size; n++ {
			fmt.Fprintf(&line, "file %d line %d: the quick brown fox jumps over the lazy dog\n", i, n)
		}
		fmt.Fprintf(w, "M 100644 inline %s\ndata %d\n%s\n", repoPath(i), line.Len(), line.String())
	}
	fmt.Fprintf(w, "\ndone\n")
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("git fast-import: %v", err)
	}
	testGit(b, dir, "symbolic-ref", "HEAD", "refs/heads/main")
	head := testGit(b, dir, "rev-parse", "HEAD")
	if err := os.WriteFile(filepath.Join(dir, "agentrunner-complete"), []byte(head+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir, head
}
