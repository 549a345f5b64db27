package workspace

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Inside an overlay workspace, git lstat()s every file and readdir()s every directory of the
// untouched tree through overlayfs, several times slower than on a plain checkout. With
// WithFSMonitor, each shared checkout is made ready for git's fsmonitor hook, which the sandbox
// mounts into the container at ContainerFSMonitor (it lists the job's upper layer: the only
// place a change can be): its index carries the fsmonitor extension with every entry valid and
// an untracked cache valid at the path the container sees, and its configuration names the
// hook. git in the container then checks only what the agent changed.
const (
	// ContainerFSMonitor is where the sandbox mounts the hook; it must agree with
	// sandbox.FSMonitorPath.
	ContainerFSMonitor = "/.agentrunner/fsmonitor"
	// ContainerWorkspace is the workspace's path in the container, which git records in the
	// untracked cache's identity (sandbox.WorkspacePath).
	ContainerWorkspace = "/workspace"
	// buildToken is the fsmonitor token the index is built with; the hook in the container
	// answers with whatever token git passes it, so any value works.
	buildToken = "agentrunner-upper"
)

// WithFSMonitor makes overlay workspaces' shared checkouts ready for git's fsmonitor hook. Set
// it only when the sandbox mounts the hook at ContainerFSMonitor: git fails loudly ("cannot run
// /.agentrunner/fsmonitor") where the configuration names a hook that is not there.
func WithFSMonitor(on bool) Option {
	return func(m *Manager) { m.fsmonitor = on }
}

// prepareFSMonitor builds the shared checkout's index for the hook and names the hook in the
// checkout's configuration. git builds the index on the host, with a hook that reports no
// change (the checkout was just written) and the index dated past every file (see fillShared:
// a racily clean entry would be smudged and re-hashed by every job); the untracked cache then
// gets the container's location as its identity. Should that fail, the hook still works:
// git in each container then rebuilds both extensions once, slower but correct.
func (m *Manager) prepareFSMonitor(ctx context.Context, sc *sharedCheckout) error {
	hook := filepath.Join(sc.dir, "fsmonitor-build")
	script := fmt.Sprintf("#!/bin/sh\nprintf '%s\\000'\n", buildToken)
	if err := os.WriteFile(hook, []byte(script), 0o700); err != nil {
		return fmt.Errorf("fsmonitor: %w", err)
	}
	defer os.Remove(hook)
	index := filepath.Join(sc.tree, ".git", "index")
	g := m.git.withConfig(
		[2]string{"core.fsmonitor", hook},
		[2]string{"core.fsmonitorHookVersion", "2"},
		[2]string{"core.untrackedCache", "true"},
		// What git in a container most likely has: no excludes file (its stat data is part of
		// the untracked cache's validity).
		[2]string{"core.excludesFile", filepath.Join(sc.dir, "no-excludes")},
		// Extensions that checksum the others would go stale when the cache's identity grows.
		[2]string{"index.recordEndOfIndexEntries", "false"},
		[2]string{"index.recordOffsetTable", "false"},
		[2]string{"index.skipHash", "false"},
		[2]string{"core.splitIndex", "false"},
	).withEnv("GIT_OPTIONAL_LOCKS=1")
	built := true
	// The first command adds both extensions; the first status fills the untracked cache, the
	// second records it as checked by fsmonitor; a third would change nothing.
	for _, args := range [][]string{{"update-index", "--fsmonitor", "--untracked-cache"}, {"status", "--porcelain"}, {"status", "--porcelain"}} {
		if err := datePastFiles(index); err != nil {
			return fmt.Errorf("fsmonitor: %w", err)
		}
		if _, err := g.run(ctx, sc.tree, nil, args...); err != nil {
			m.log.Warn("fsmonitor: cannot build the shared index's extensions; git in each container will", "path", sc.tree, "err", err)
			built = false
			break
		}
	}
	if built {
		if err := setUntrackedIdent(index, ContainerWorkspace); err != nil {
			m.log.Warn("fsmonitor: cannot make the untracked cache valid in containers; git there rebuilds it", "path", sc.tree, "err", err)
		}
	}
	if err := datePastFiles(index); err != nil {
		return fmt.Errorf("fsmonitor: %w", err)
	}
	config := filepath.Join(sc.tree, ".git", "config")
	for _, kv := range [][2]string{{"core.fsmonitor", ContainerFSMonitor}, {"core.fsmonitorHookVersion", "2"}, {"core.untrackedCache", "true"}} {
		if _, err := m.git.run(ctx, sc.tree, nil, "config", "--file", config, kv[0], kv[1]); err != nil {
			return fmt.Errorf("fsmonitor: configure the shared checkout: %w", err)
		}
	}
	return nil
}

// datePastFiles dates the index at the next whole second: see fillShared.
func datePastFiles(index string) error {
	next := time.Now().Truncate(time.Second).Add(time.Second)
	return os.Chtimes(index, next, next)
}
