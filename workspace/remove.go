package workspace

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Remove deletes the workspace. It returns once the workspace is gone from its path (renamed
// into the trash, which is instant); the files are deleted in the background, and Manager.Close
// waits for that, while Sweep deletes what a crash left in the trash. Remove is safe to call
// twice, while the workspace is being filled (it stops the fill) and after Ready failed.
func (w *Workspace) Remove(ctx context.Context) error {
	w.removeOnce.Do(func() {
		// git must not write into the tree while it moves to the trash.
		w.stopFill()
		<-w.filled
		w.removeErr = w.m.discard(ctx, w.dir)
		if w.joined && w.removeErr == nil {
			w.removeErr = w.m.leaveShared(ctx, w.shared.key, w.runID, filepath.Base(w.dir))
		}
	})
	return w.removeErr
}

// discard moves dir into the trash and deletes it in the background.
func (m *Manager) discard(_ context.Context, dir string) error {
	trash := filepath.Join(m.root, trashDir, randomName(filepath.Base(dir)))
	if err := os.Rename(dir, trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		// Another filesystem or a permission problem: delete in place.
		if rmErr := removeTree(dir); rmErr != nil {
			return fmt.Errorf("remove workspace %s: %w", dir, rmErr)
		}
		removeIfEmpty(filepath.Dir(dir))
		return nil
	}
	removeIfEmpty(filepath.Dir(dir))
	m.mu.Lock()
	m.pending[filepath.Base(trash)] = true
	m.mu.Unlock()
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		if err := removeTree(trash); err != nil {
			m.log.Warn("delete removed workspace", "path", trash, "err", err)
		}
		m.mu.Lock()
		delete(m.pending, filepath.Base(trash))
		m.mu.Unlock()
	}()
	m.log.Debug("workspace removed", "path", dir)
	return nil
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// removeIfEmpty removes dir when it is empty (a run directory whose last workspace went away).
func removeIfEmpty(dir string) {
	_ = os.Remove(dir)
}

// removeTree deletes p and everything below it. When an agent left directories without write
// permission (possible when it runs as the runner's own uid), it restores them and retries.
func removeTree(p string) error {
	err := os.RemoveAll(p)
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	_ = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(q, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}

// Sweep removes the workspaces of every run for which keep returns false (keep may be nil to
// remove all) and whatever a crash left in the trash. It returns the run ids it removed. Call it
// at start-up, before new runs start, or with keep answering true for every live run.
func (m *Manager) Sweep(ctx context.Context, keep func(runID string) bool) (removed []string, err error) {
	entries, err := os.ReadDir(m.root)
	if err != nil {
		return nil, fmt.Errorf("sweep %s: %w", m.root, err)
	}
	var errs []error
	for _, e := range entries {
		if ctx.Err() != nil {
			return removed, ctx.Err()
		}
		name := e.Name()
		if !e.IsDir() || checkRunID(name) != nil {
			continue
		}
		if keep != nil && keep(name) {
			continue
		}
		if err := removeTree(filepath.Join(m.root, name)); err != nil {
			errs = append(errs, fmt.Errorf("sweep run %s: %w", name, err))
			continue
		}
		m.log.Info("swept leftover workspaces", "run_id", name)
		removed = append(removed, name)
	}
	for _, sub := range []string{trashDir, tmpDir} {
		trash, err := os.ReadDir(filepath.Join(m.root, sub))
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep %s: %w", sub, err))
			continue
		}
		for _, e := range trash {
			m.mu.Lock()
			busy := m.pending[e.Name()]
			m.mu.Unlock()
			if busy {
				continue
			}
			if err := removeTree(filepath.Join(m.root, sub, e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("sweep %s: %w", sub, err))
			}
		}
	}
	if err := m.sweepShared(ctx); err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// RemoveRun removes every workspace of runID, for a run that starts again after an attempt
// that could not clean up (its process was killed). Do not call it while the run is going.
func (m *Manager) RemoveRun(ctx context.Context, runID string) error {
	if err := checkRunID(runID); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Join(m.root, runID)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	m.log.Info("removing workspaces of an earlier attempt", "run_id", runID)
	if err := removeTree(dir); err != nil {
		return err
	}
	return m.sweepShared(ctx)
}
