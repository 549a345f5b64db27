package web

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"

	"github.com/agentrunner/agentrunner/internal/safefile"
	"github.com/agentrunner/agentrunner/runner"
)

// maxRunFile bounds a run file read whole for a page (result.json, a report, a patch); the
// page parsers bound what they show further.
const maxRunFile = 32 << 20

// errRunFileTooLarge is a run file over maxRunFile.
var errRunFileTooLarge = errors.New("run file too large to show")

// runFile reads a run's file from this daemon's run directory, or else from the store, where
// the daemon that ran the run keeps it (the read API's rule). The run directory also holds what
// agents wrote, so nothing read from it may be a symlink or other than a regular file
// (safefile). local names the file in the run directory when it differs from the stored name.
func (u *UI) runFile(ctx context.Context, runID, name, local string) ([]byte, error) {
	if local == "" {
		local = name
	}
	if dir, ok := u.runDir(runID); ok {
		if b, err := safefile.Read(dir, local, maxRunFile); err == nil {
			return b, nil
		}
	}
	b, err := u.Store.RunFile(ctx, runID, name)
	if err == nil && len(b) > maxRunFile {
		return nil, errRunFileTooLarge
	}
	return b, err
}

// runFileTail reads the last max bytes of a run's file (see runFile), starting after a line
// break when it is cut; cut is how many bytes were left off before.
func (u *UI) runFileTail(ctx context.Context, runID, name string, max int64) (data []byte, cut int64, err error) {
	if dir, ok := u.runDir(runID); ok {
		if f, err := safefile.Open(dir, name); err == nil {
			defer f.Close()
			if st, err := f.Stat(); err == nil {
				if st.Size() > max {
					cut = st.Size() - max
					if _, err := f.Seek(cut, io.SeekStart); err != nil {
						return nil, 0, err
					}
				}
				if data, err = io.ReadAll(io.LimitReader(f, max)); err == nil {
					return skipPartialLine(data, cut)
				}
			}
		}
	}
	data, err = u.Store.RunFile(ctx, runID, name)
	if err != nil {
		return nil, 0, err
	}
	if int64(len(data)) > max {
		cut = int64(len(data)) - max
		data = data[cut:]
	}
	return skipPartialLine(data, cut)
}

func skipPartialLine(data []byte, cut int64) ([]byte, int64, error) {
	if cut == 0 {
		return data, 0, nil
	}
	if i := strings.IndexByte(string(data[:min(len(data), 64<<10)]), '\n'); i >= 0 {
		return data[i+1:], cut + int64(i+1), nil
	}
	return data, cut, nil
}

// runDir is this daemon's directory of run runID, when it has one. A run id from a URL could be
// "../x": only one plain path element is used.
func (u *UI) runDir(runID string) (string, bool) {
	if u.RunsDir == "" || !filepath.IsLocal(runID) || strings.ContainsAny(runID, `/\`) {
		return "", false
	}
	return filepath.Join(u.RunsDir, runID), true
}

// jobDirs are the names a job's directory under jobs/ may have: the runner's (JobDirName) and,
// for a simple id, the id itself (the read API tries both).
func jobDirs(job string) []string {
	var out []string
	for _, name := range []string{runner.JobDirName(job), job} {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
			continue
		}
		if len(out) == 0 || out[0] != name {
			out = append(out, name)
		}
	}
	return out
}
