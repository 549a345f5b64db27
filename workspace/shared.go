package workspace

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sharedCheckout is the read-only checkout of one commit that the overlay workspaces of every
// job on that commit (and container owner) share as their lower layer. It lives at
//
//	<root>/.shared/<key>/tree          the checkout: a complete repository, HEAD detached
//	<root>/.shared/<key>/split/        its index, split (see splitBaseIndex), for Changes
//	<root>/.shared/<key>/ready         written once the checkout is complete
//	<root>/.shared/<key>/users/<runID>/<job>   one marker per job using it
//	<root>/.shared/<key>.lock          the file lock of filling, joining and leaving
//
// The markers are on disk so that after a crash Sweep can tell the checkouts still in use
// (a marker whose job directory exists) from the ones to delete.
type sharedCheckout struct {
	key   string
	dir   string
	tree  string
	split string // dir/split: the checkout's index as a split index, for Changes
}

const (
	sharedTree  = "tree"
	sharedSplit = "split"
	sharedReady = "ready"
	sharedUsers = "users"
)

// sharedCheckoutOf names the shared checkout of commit base of the source whose common git
// directory is common, owned by owner (the runner itself when nil).
func (m *Manager) sharedCheckoutOf(common, base string, owner *Owner) *sharedCheckout {
	sum := sha256.Sum256([]byte(common))
	who := "self"
	if owner != nil {
		who = strconv.Itoa(owner.UID) + "-" + strconv.Itoa(owner.GID)
	}
	key := hex.EncodeToString(sum[:6]) + "-" + base + "-" + who
	if m.fsmonitor {
		// Its configuration names a hook only containers of this kind of runner have.
		key += "-fsm"
	}
	dir := filepath.Join(m.root, sharedDir, key)
	return &sharedCheckout{key: key, dir: dir, tree: filepath.Join(dir, sharedTree), split: filepath.Join(dir, sharedSplit)}
}

// lockShared takes the in-process lock and the file lock of the shared checkout key.
func (m *Manager) lockShared(ctx context.Context, key string) (unlock func(), err error) {
	v, _ := m.sharedMu.LoadOrStore(key, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	mu.Lock()
	// discard removes a parent left empty: the last shared checkout may have taken it along.
	if err := os.MkdirAll(filepath.Join(m.root, sharedDir), 0o700); err != nil {
		mu.Unlock()
		return nil, fmt.Errorf("create shared checkout directory: %w", err)
	}
	unlockFile, err := lockFile(ctx, filepath.Join(m.root, sharedDir, key+".lock"))
	if err != nil {
		mu.Unlock()
		return nil, err
	}
	return func() { unlockFile(); mu.Unlock() }, nil
}

// prepareUpper writes, into the job's empty upper layer, what makes git in the merged view be
// on the job's branch at the base commit: the shared checkout's HEAD is detached, the upper
// layer's HEAD and branch ref hide it. It also makes the overlay's work directory. Directories
// get the mode and owner their counterparts in the shared checkout have, since the upper
// layer's copy of a directory is what the merged view shows.
func (w *Workspace) prepareUpper(owner *Owner) error {
	if err := os.Mkdir(w.work, 0o700); err != nil {
		return fmt.Errorf("create overlay work directory: %w", err)
	}
	gitDir := filepath.Join(w.path, ".git")
	refDir := filepath.Join(gitDir, "refs", "heads", filepath.Dir(filepath.FromSlash(w.branch)))
	var made []string
	for d := refDir; d != w.path; d = filepath.Dir(d) {
		made = append(made, d)
	}
	if err := os.MkdirAll(refDir, 0o755); err != nil {
		return fmt.Errorf("prepare upper layer: %w", err)
	}
	files := map[string]string{
		filepath.Join(gitDir, "HEAD"):                                        "ref: refs/heads/" + w.branch + "\n",
		filepath.Join(gitDir, "refs", "heads", filepath.FromSlash(w.branch)): w.base + "\n",
	}
	for p, content := range files {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return fmt.Errorf("prepare upper layer: %w", err)
		}
		made = append(made, p)
	}
	if owner == nil {
		return nil
	}
	for _, p := range made {
		if err := os.Lchown(p, owner.UID, owner.GID); err != nil {
			return fmt.Errorf("prepare upper layer: give %s to uid %d: %w", p, owner.UID, err)
		}
	}
	return nil
}

// fillOverlay joins the shared checkout of the workspace's commit, writing it first when no
// job has, and makes the runner's private git directory.
func (w *Workspace) fillOverlay(ctx context.Context, repoDir string, si *sourceInfo, owner *Owner) error {
	if err := w.m.joinShared(ctx, w.shared, repoDir, si, w.base, owner, w.runID, filepath.Base(w.dir)); err != nil {
		return err
	}
	w.joined = true
	if err := initPrivate(w.private, si.common, ""); err != nil {
		return err
	}
	if err := linkSharedIndex(w.shared.split, w.private); err != nil {
		return err
	}
	w.m.log.Debug("overlay workspace created", "run_id", w.runID, "job", w.jobID, "upper", w.path, "lower", w.shared.tree, "base", w.base)
	return nil
}

// joinShared records job of runID as a user of sc and makes sure sc is complete: the first
// user writes it, concurrent ones (in this process or another on the same root) wait for that.
// A checkout left incomplete by a crash is written again.
func (m *Manager) joinShared(ctx context.Context, sc *sharedCheckout, repoDir string, si *sourceInfo, base string, owner *Owner, runID, job string) error {
	unlock, err := m.lockShared(ctx, sc.key)
	if err != nil {
		return fmt.Errorf("shared checkout of %s: %w", base, err)
	}
	defer unlock()
	if _, err := os.Lstat(filepath.Join(sc.dir, sharedReady)); err != nil {
		if err := removeTree(sc.dir); err != nil {
			return fmt.Errorf("remove incomplete shared checkout %s: %w", sc.dir, err)
		}
		if err := m.fillShared(ctx, sc, repoDir, si, base, owner); err != nil {
			if rmErr := removeTree(sc.dir); rmErr != nil {
				m.log.Warn("remove failed shared checkout", "path", sc.dir, "err", rmErr)
			}
			return err
		}
	}
	marker := filepath.Join(sc.dir, sharedUsers, runID, job)
	if err := os.MkdirAll(filepath.Dir(marker), 0o700); err != nil {
		return fmt.Errorf("record user of shared checkout: %w", err)
	}
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		return fmt.Errorf("record user of shared checkout: %w", err)
	}
	return nil
}

// fillShared writes the shared checkout sc: the same repository a checkout-mode workspace
// gets, with HEAD detached at base (each job's upper layer puts its own branch on top).
func (m *Manager) fillShared(ctx context.Context, sc *sharedCheckout, repoDir string, si *sourceInfo, base string, owner *Owner) error {
	if err := os.MkdirAll(filepath.Join(sc.dir, sharedUsers), 0o700); err != nil {
		return fmt.Errorf("create shared checkout: %w", err)
	}
	if err := os.Mkdir(sc.tree, 0o755); err != nil {
		return fmt.Errorf("create shared checkout: %w", err)
	}
	if err := m.checkout(ctx, repoDir, si, sc.tree, "", base, owner); err != nil {
		return fmt.Errorf("shared checkout of %s: %w", base, err)
	}
	// git takes an entry whose file is not older than the index (in whole seconds, as git is
	// often built) for "racily clean" and rewrites the index after checking it: every job's
	// first `git status` would copy the index up and re-hash the files written in the last
	// second. Dating the index at the next second is safe here: the lower layer's files never
	// change, and a file changed through the overlay is a new inode, which the stat data
	// catches whatever the times.
	next := time.Now().Truncate(time.Second).Add(time.Second)
	if err := os.Chtimes(filepath.Join(sc.tree, ".git", "index"), next, next); err != nil {
		return fmt.Errorf("shared checkout of %s: %w", base, err)
	}
	if err := m.splitBaseIndex(ctx, sc, si.common); err != nil {
		return fmt.Errorf("shared checkout of %s: %w", base, err)
	}
	// After the split: the runner's own index for Changes needs neither extension.
	if m.fsmonitor {
		if err := m.prepareFSMonitor(ctx, sc); err != nil {
			return fmt.Errorf("shared checkout of %s: %w", base, err)
		}
	}
	if owner != nil {
		// git rewrote these as the runner (by lock file and rename): give them back, or an
		// agent could not edit its own .git/config as it can in a checkout workspace.
		for _, name := range []string{"index", "config"} {
			if err := os.Lchown(filepath.Join(sc.tree, ".git", name), owner.UID, owner.GID); err != nil {
				return fmt.Errorf("shared checkout of %s: give .git/%s to uid %d: %w", base, name, owner.UID, err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(sc.dir, sharedReady), nil, 0o600); err != nil {
		return fmt.Errorf("shared checkout of %s: %w", base, err)
	}
	m.log.Info("shared checkout created", "path", sc.tree, "base", base)
	return nil
}

// leaveShared removes job of runID from the users of the shared checkout key and deletes the
// checkout when no user is left.
func (m *Manager) leaveShared(ctx context.Context, key, runID, job string) error {
	unlock, err := m.lockShared(ctx, key)
	if err != nil {
		return fmt.Errorf("leave shared checkout %s: %w", key, err)
	}
	defer unlock()
	dir := filepath.Join(m.root, sharedDir, key)
	users := filepath.Join(dir, sharedUsers)
	if err := os.Remove(filepath.Join(users, runID, job)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("leave shared checkout %s: %w", key, err)
	}
	removeIfEmpty(filepath.Join(users, runID))
	return m.dropSharedIfUnused(ctx, key, nil)
}

// dropSharedIfUnused deletes the shared checkout key when it has no user left: none at all,
// or with stale, only users whose markers stale says are left over from a crash (those
// markers are removed). The caller holds the checkout's lock.
func (m *Manager) dropSharedIfUnused(ctx context.Context, key string, stale func(runID, job string) bool) error {
	dir := filepath.Join(m.root, sharedDir, key)
	users := filepath.Join(dir, sharedUsers)
	runs, err := os.ReadDir(users)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("users of shared checkout %s: %w", key, err)
	}
	inUse := false
	for _, r := range runs {
		jobs, err := os.ReadDir(filepath.Join(users, r.Name()))
		if err != nil {
			return fmt.Errorf("users of shared checkout %s: %w", key, err)
		}
		for _, j := range jobs {
			if stale == nil || !stale(r.Name(), j.Name()) {
				inUse = true
				continue
			}
			if err := os.Remove(filepath.Join(users, r.Name(), j.Name())); err != nil {
				return fmt.Errorf("users of shared checkout %s: %w", key, err)
			}
		}
		removeIfEmpty(filepath.Join(users, r.Name()))
	}
	if inUse {
		return nil
	}
	if err := m.discard(ctx, dir); err != nil {
		return fmt.Errorf("remove shared checkout %s: %w", key, err)
	}
	// Deleted while held: a waiter notices and takes the lock of a new file (see lockFile).
	_ = os.Remove(dir + ".lock")
	m.log.Debug("shared checkout removed", "key", key)
	return nil
}

// sweepShared deletes the shared checkouts no job uses any more: a user whose job directory
// is gone (removed, swept, or never made because the process died) no longer counts.
func (m *Manager) sweepShared(ctx context.Context) error {
	root := filepath.Join(m.root, sharedDir)
	entries, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("sweep shared checkouts: %w", err)
	}
	keys := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if key, ok := strings.CutSuffix(name, ".lock"); ok {
			keys[key] = true
		} else if e.IsDir() {
			keys[name] = true
		}
	}
	gone := func(runID, job string) bool {
		_, err := os.Lstat(filepath.Join(m.root, runID, job))
		return errors.Is(err, fs.ErrNotExist)
	}
	var errs []error
	for key := range keys {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		unlock, err := m.lockShared(ctx, key)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := m.dropSharedIfUnused(ctx, key, gone); err != nil {
			errs = append(errs, err)
		}
		unlock()
	}
	return errors.Join(errs...)
}

// splitBaseIndex writes the shared checkout's index, before any agent ran, as a split index
// into sc.split: a small index file naming a large sharedindex.<id> file that holds every
// entry. Changes hashes a job's changes on a copy of the small file, with the large one
// hard-linked into the job's private git directory, so that each of its git commands writes
// an index of the changed entries only, not one of the whole repository (on a 100,000-file
// repository: kilobytes instead of 10 MB, twice per job).
func (m *Manager) splitBaseIndex(ctx context.Context, sc *sharedCheckout, srcCommon string) error {
	if err := initPrivate(sc.split, srcCommon, filepath.Join(sc.tree, ".git", "index")); err != nil {
		return err
	}
	g := m.git.withEnv("GIT_DIR="+sc.split, "GIT_INDEX_FILE="+filepath.Join(sc.split, "index"))
	if _, err := g.run(ctx, sc.split, nil, "update-index", "--split-index"); err != nil {
		return fmt.Errorf("split index: %w", err)
	}
	return nil
}

// linkSharedIndex hard-links (copies, where it cannot) the shared index file of the split
// index in split into the git directory gitDir, where git looks for it.
func linkSharedIndex(split, gitDir string) error {
	names, err := filepath.Glob(filepath.Join(split, "sharedindex.*"))
	if err != nil || len(names) != 1 {
		return fmt.Errorf("shared index in %s: found %d (%v)", split, len(names), err)
	}
	dst := filepath.Join(gitDir, filepath.Base(names[0]))
	if err := os.Link(names[0], dst); err == nil {
		return nil
	}
	return copyFile(names[0], dst, 0o600)
}
