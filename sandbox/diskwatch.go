package sandbox

import (
	"context"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"
)

// Docker cannot bound what a container writes into a bind mount: `--storage-opt size=` limits
// only the container's own writable layer, and only on overlay2 over xfs with project quotas
// (on this project's test host, fuse-overlayfs on ext4, the engine refuses the option
// outright). /workspace and the output directory are bind mounts, so their limit is enforced
// by watching them: a walk every diskWatchInterval adds up the blocks allocated below them,
// and a container whose writes pass its limit is killed. /tmp is a tmpfs with a size, bounded
// by the kernel.
const (
	// diskWatchInterval is the time between walks; a walk that takes more than a tenth of it
	// stretches it, so watching a large checkout costs at most a tenth of a core.
	diskWatchInterval = time.Second
	// diskWalkBudget bounds one walk: a tree too large to walk in it is measured in part
	// (undercounted) rather than holding the watcher up.
	diskWalkBudget = 2 * time.Second
)

// diskWatcher measures what an agent writes into its directories.
type diskWatcher struct {
	dirs  []string
	limit int64
	base  int64 // usage before the agent started: the checkout, the prompt
}

// watchDisk returns a channel closed once more than limit bytes were written below dirs,
// checking until ctx ends. The usage it starts from (the checkout, the prompt) is measured
// at once, while the container starts, so that it does not delay the agent.
func watchDisk(ctx context.Context, limit int64, dirs ...string) <-chan struct{} {
	w := &diskWatcher{dirs: dirs, limit: limit}
	over := make(chan struct{})
	go func() {
		start := time.Now()
		w.base = w.usage()
		took := time.Since(start)
		t := time.NewTimer(max(diskWatchInterval, 10*took))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			start := time.Now()
			used := w.usage() - w.base
			if used > w.limit {
				close(over)
				return
			}
			t.Reset(max(diskWatchInterval, 10*time.Since(start)))
		}
	}()
	return over
}

// usage is the space allocated below the watched directories, in bytes. Links are not
// followed; a file linked twice counts once; a sparse file counts what it allocates.
func (w *diskWatcher) usage() int64 {
	deadline := time.Now().Add(diskWalkBudget)
	seen := map[[2]uint64]bool{}
	var total int64
	for _, dir := range w.dirs {
		_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil // gone meanwhile, or unreadable: the agent's own business
			}
			if time.Now().After(deadline) {
				return filepath.SkipAll
			}
			fi, err := e.Info()
			if err != nil {
				return nil
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok {
				total += fi.Size()
				return nil
			}
			if st.Nlink > 1 && !fi.IsDir() {
				key := [2]uint64{uint64(st.Dev), st.Ino}
				if seen[key] {
					return nil
				}
				seen[key] = true
			}
			total += st.Blocks * 512
			return nil
		})
	}
	return total
}
