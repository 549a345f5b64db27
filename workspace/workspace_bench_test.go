package workspace

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// benchRepo generates a repository of n files in 100 directories with one commit.
func benchRepo(b *testing.B, n int) (string, string) {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "big")
	testGit(b, b.TempDir(), "init", "-q", dir)
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("pkg%02d", i%100), fmt.Sprintf("file%05d.go", i))
		if i < 100 {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
		}
		content := fmt.Sprintf("package pkg%02d\n\n// File %d of the benchmark repository.\nfunc F%d() int { return %d }\n", i%100, i, i, i)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	testGit(b, dir, "add", "-A")
	testGit(b, dir, "-c", "gc.auto=0", "commit", "-q", "-m", "big")
	testGit(b, dir, "gc", "-q") // a packed repository, as a clone or a mirror has
	return dir, testGit(b, dir, "rev-parse", "HEAD")
}

// diskUsage returns the bytes allocated to files and directories below dir, counting each
// inode once and skipping inodes in exclude (shared with the source by hard link).
func diskUsage(b *testing.B, dir string, exclude map[uint64]bool) (int64, map[uint64]bool) {
	b.Helper()
	seen := map[uint64]bool{}
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if seen[st.Ino] || exclude[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		total += st.Blocks * 512
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return total, seen
}

// benchOwner is the container user: another uid when running as root, as the daemon does.
func benchOwner() *Owner {
	if os.Getuid() == 0 {
		return &Owner{UID: 65532, GID: 65532}
	}
	return nil
}

// BenchmarkWorkspace compares preparing and removing a workspace of a 10,000-file repository
// with the baseline of `git clone file://` of the same repository and os.RemoveAll, in one run.
func BenchmarkWorkspace(b *testing.B) {
	src, head := benchRepo(b, 10000)
	_, srcInodes := diskUsage(b, src, nil)
	m, err := NewManager(filepath.Join(b.TempDir(), "data"))
	if err != nil {
		b.Fatal(err)
	}
	owner := benchOwner()
	var cloneTime, cloneRemove, wsCreate, wsRemove, wsDelete time.Duration
	var cloneBytes, wsBytes int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Baseline: a plain clone over file:// and its removal.
		dst := filepath.Join(b.TempDir(), "clone")
		start := time.Now()
		testGit(b, b.TempDir(), "clone", "-q", "file://"+src, dst)
		cloneTime += time.Since(start)
		if i == 0 {
			cloneBytes, _ = diskUsage(b, dst, srcInodes)
		}
		start = time.Now()
		if err := os.RemoveAll(dst); err != nil {
			b.Fatal(err)
		}
		cloneRemove += time.Since(start)

		start = time.Now()
		w, err := m.Create(b.Context(), Source{RepoDir: src, SHA: head}, "bench", fmt.Sprint("job", i), owner)
		if err != nil {
			b.Fatal(err)
		}
		wsCreate += time.Since(start)
		if i == 0 {
			wsBytes, _ = diskUsage(b, filepath.Dir(w.Path()), srcInodes)
		}
		start = time.Now()
		if err := w.Remove(b.Context()); err != nil {
			b.Fatal(err)
		}
		wsRemove += time.Since(start)
		m.Close() // until the background deletion is done
		wsDelete += time.Since(start)
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Milliseconds()) / n }
	b.ReportMetric(ms(cloneTime+cloneRemove), "clone+rm-ms/op")
	b.ReportMetric(ms(wsCreate+wsDelete), "ws+rm-ms/op")
	b.ReportMetric(float64(wsCreate+wsDelete)/float64(cloneTime+cloneRemove), "ws/clone-ratio")
	b.ReportMetric(ms(cloneTime), "clone-ms/op")
	b.ReportMetric(ms(wsCreate), "ws-create-ms/op")
	b.ReportMetric(ms(cloneRemove), "clone-rm-ms/op")
	b.ReportMetric(ms(wsRemove), "ws-remove-return-ms/op")
	b.ReportMetric(ms(wsDelete), "ws-remove-complete-ms/op")
	b.ReportMetric(float64(cloneBytes), "clone-disk-B")
	b.ReportMetric(float64(wsBytes), "ws-extra-disk-B")

	// Ways of deleting a workspace, to choose Remove's: os.RemoveAll, unlinking from 8
	// goroutines, and renaming into the trash (what Remove does before deleting in the
	// background; timed on the RemoveAll copy just before it is deleted).
	var seq, par, ren time.Duration
	for i := 0; i < b.N; i++ {
		var dirs [2]string
		for j := range dirs {
			w, err := m.Create(b.Context(), Source{RepoDir: src, SHA: head}, "rm", fmt.Sprint("job", i, j), owner)
			if err != nil {
				b.Fatal(err)
			}
			dirs[j] = filepath.Dir(w.Path())
		}
		trash := filepath.Join(m.root, trashDir, "bench")
		start := time.Now()
		if err := os.Rename(dirs[0], trash); err != nil {
			b.Fatal(err)
		}
		ren += time.Since(start)
		start = time.Now()
		if err := os.RemoveAll(trash); err != nil {
			b.Fatal(err)
		}
		seq += time.Since(start)
		start = time.Now()
		if err := parallelRemove(dirs[1], 8); err != nil {
			b.Fatal(err)
		}
		par += time.Since(start)
	}
	b.ReportMetric(float64(seq.Microseconds())/n/1000, "rm-removeall-ms/op")
	b.ReportMetric(float64(par.Microseconds())/n/1000, "rm-parallel8-ms/op")
	b.ReportMetric(float64(ren.Microseconds())/n/1000, "rm-rename-ms/op")
}

// parallelRemove unlinks the files of each top-level subdirectory of dir in its own goroutine.
func parallelRemove(dir string, workers int) error {
	var files []string
	var dirs []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			if d.IsDir() {
				dirs = append(dirs, p)
			} else {
				files = append(files, p)
			}
		}
		return nil
	})
	ch := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for p := range ch {
				os.Remove(p)
			}
		})
	}
	for _, f := range files {
		ch <- f
	}
	close(ch)
	wg.Wait()
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i])
	}
	return os.RemoveAll(dir)
}
