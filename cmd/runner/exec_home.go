package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/agentrunner/agentrunner/internal/procid"
	"github.com/agentrunner/agentrunner/workspace"
)

// execHome is where one `runner exec` process keeps what must not live in the user's
// repository: the agents' workspaces (git repositories an agent wrote, with a .git whose
// hooks and config a later `git` there would honour) and the runner's own git home. It is
// <user cache dir>/agentrunner/exec/<host>-<pid>-<start>/, named after the process so that
// the next exec can tell a killed one's leftovers from a live one's:
//
//	workspaces/   the workspace.Manager's root
//	runs          the run ids this exec started, one a line, to reap their containers
type execHome struct {
	id  procid.ID
	dir string
}

// execHomesDir is the directory holding every exec's home.
func execHomesDir() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("runner exec keeps workspaces in the user's cache directory: %w (set XDG_CACHE_HOME or HOME)", err)
	}
	return filepath.Join(cache, "agentrunner", "exec"), nil
}

// newExecHome creates this process's home.
func newExecHome() (*execHome, error) {
	root, err := execHomesDir()
	if err != nil {
		return nil, err
	}
	id, err := procid.Self()
	if err != nil {
		return nil, err
	}
	h := &execHome{id: id, dir: filepath.Join(root, execHomeName(id))}
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", h.dir, err)
	}
	return h, nil
}

func execHomeName(id procid.ID) string {
	return id.Host + "-" + strconv.Itoa(id.PID) + "-" + strconv.FormatUint(id.Start, 10)
}

// parseExecHomeName reads back execHomeName; false for any other name.
func parseExecHomeName(name string) (procid.ID, bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return procid.ID{}, false
	}
	j := strings.LastIndexByte(name[:i], '-')
	if j <= 0 {
		return procid.ID{}, false
	}
	id, err := procid.Parse(name[:j] + ":" + name[j+1:i] + ":" + name[i+1:])
	return id, err == nil && execHomeName(id) == name
}

// owner is the value of sandbox.LabelOwner on this exec's containers.
func (h *execHome) owner() string { return "exec:" + h.id.String() }

func (h *execHome) workspaces() string { return filepath.Join(h.dir, "workspaces") }

// addRun records a run id before the run creates anything labelled with it.
func (h *execHome) addRun(runID string) error {
	f, err := os.OpenFile(filepath.Join(h.dir, "runs"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("record run %s: %w", runID, err)
	}
	_, err = f.WriteString(runID + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record run %s: %w", runID, err)
	}
	return nil
}

// remove deletes the home with everything left in it.
func (h *execHome) remove(ctx context.Context) error {
	return removeExecHome(ctx, h.dir)
}

// removeExecHome deletes an exec's home, its workspaces through the workspace package (which
// copes with trees an agent made unwritable).
func removeExecHome(ctx context.Context, dir string) error {
	ws := filepath.Join(dir, "workspaces")
	if _, err := os.Stat(ws); err == nil {
		m, err := workspace.NewManager(ws)
		if err != nil {
			return err
		}
		_, err = m.Sweep(ctx, nil)
		m.Close()
		if err != nil {
			return err
		}
	}
	return os.RemoveAll(dir)
}

// reapExecLeftovers removes what execs that are provably gone (killed, crashed) left behind:
// the containers and networks of their runs, through reap, then their homes. A live exec's
// home, or one of another host sharing the cache directory, is never touched.
func reapExecLeftovers(ctx context.Context, self *execHome, reap func(ctx context.Context, keep func(runID string) bool) error, log *slog.Logger) {
	root := filepath.Dir(self.dir)
	entries, err := os.ReadDir(root)
	if err != nil {
		log.Warn("look for leftovers of earlier execs", "dir", root, "err", err)
		return
	}
	for _, e := range entries {
		id, ok := parseExecHomeName(e.Name())
		if !ok || !e.IsDir() || id == self.id || !id.Gone() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		runs, err := readRunIDs(filepath.Join(dir, "runs"))
		if err != nil {
			log.Warn("read the runs of a killed exec", "dir", dir, "err", err)
			continue
		}
		if len(runs) > 0 {
			if err := reap(ctx, func(runID string) bool { return !runs[runID] }); err != nil {
				// Its workspaces stay until its containers are gone: the next exec tries again.
				log.Warn("remove the containers of a killed exec", "exec", id.String(), "err", err)
				continue
			}
		}
		if err := removeExecHome(ctx, dir); err != nil {
			log.Warn("remove the workspaces of a killed exec", "dir", dir, "err", err)
			continue
		}
		log.Info("removed the leftovers of a killed exec", "exec", id.String())
	}
}

func readRunIDs(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if id := strings.TrimSpace(sc.Text()); id != "" {
			out[id] = true
		}
	}
	return out, sc.Err()
}
