package workspace

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
)

// Mode says how workspaces are made.
type Mode string

// The workspace modes.
const (
	// ModeCheckout gives every job a full private checkout of its commit: O(repository) in
	// time and disk per job, but it needs nothing from the container engine.
	ModeCheckout Mode = "checkout"
	// ModeOverlay gives every job a copy-on-write layer over one shared read-only checkout per
	// commit (see Layers): O(files the job changes). The sandbox must mount the layers as a
	// kernel overlay; Path is then only the job's upper layer.
	ModeOverlay Mode = "overlay"
)

// ParseMode returns the Mode named s ("checkout" or "overlay").
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeCheckout, ModeOverlay:
		return m, nil
	}
	return "", fmt.Errorf("workspace mode %q is not one of %q, %q", s, ModeCheckout, ModeOverlay)
}

// WithMode makes the Manager create workspaces in mode md; the default is ModeCheckout.
func WithMode(md Mode) Option {
	return func(m *Manager) { m.mode = md }
}

// Mode returns how the Manager makes workspaces.
func (m *Manager) Mode() Mode { return m.mode }

// Layers are the host directories of an overlay workspace, for the sandbox to mount as
// lowerdir/upperdir/workdir of a kernel overlay (with the userxattr option, so that a runner
// that is not root reads the overlay's own marks back: see Changes).
type Layers struct {
	Lower, Upper, Work string
	// FSMonitor: the lower layer's git configuration names the fsmonitor hook, which the
	// sandbox must mount at ContainerFSMonitor (WithFSMonitor).
	FSMonitor bool
}

// Layers returns the workspace's overlay layers; ok false for a checkout-mode workspace.
// Lower exists, complete, once Ready returned nil: mount the layers only then. Lower is shared
// by every job on the same commit and must never be written; Upper and Work are the job's.
func (w *Workspace) Layers() (l Layers, ok bool) {
	if w.shared == nil {
		return Layers{}, false
	}
	return Layers{Lower: w.shared.tree, Upper: w.path, Work: w.work, FSMonitor: w.m.fsmonitor}, true
}

// DiskUsage returns the bytes the job's workspace costs on disk beyond shared data: the upper
// layer (overlay) or the whole private checkout (checkout mode). Files shared by hard link
// with the source's object store are not counted, each inode counts once, and the walk never
// follows a link (the tree is agent-written).
func (w *Workspace) DiskUsage() (int64, error) {
	seen := map[uint64]bool{}
	var total int64
	err := filepath.WalkDir(w.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				return nil // removed meanwhile, or the kernel's own work directory
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok || seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		if info.Mode().IsRegular() && st.Nlink > 1 && (w.shared == nil || strings.HasPrefix(p, w.private)) {
			return nil // an object shared with the source, or the shared checkout's index
		}
		total += st.Blocks * 512
		return nil
	})
	if err != nil {
		return total, fmt.Errorf("disk usage of job %q: %w", w.jobID, err)
	}
	return total, nil
}
