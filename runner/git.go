package runner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/workspace"
)

// GitWorkspaces adapts a workspace.Manager to the engine: every job gets its own clone of
// Source at the run's commit, owned by the container's user.
type GitWorkspaces struct {
	Manager *workspace.Manager
	Source  workspace.Source
	Owner   *workspace.Owner
}

// Create implements Workspaces.
func (g *GitWorkspaces) Create(ctx context.Context, runID, jobID, base string) (Workspace, error) {
	src := g.Source
	if base != "" {
		src.SHA, src.IncludeUncommitted = base, false
	}
	w, err := g.Manager.Start(ctx, src, runID, jobID, g.Owner)
	if err != nil {
		return nil, err
	}
	return gitWorkspace{w}, nil
}

type gitWorkspace struct{ w *workspace.Workspace }

func (g gitWorkspace) Path() string                     { return g.w.Path() }
func (g gitWorkspace) Remove(ctx context.Context) error { return g.w.Remove(ctx) }
func (g gitWorkspace) Ready(ctx context.Context) error  { return g.w.Ready(ctx) }
func (g gitWorkspace) ContainerEnv() []string           { return g.w.ContainerEnv() }
func (g gitWorkspace) DiskUsage() (int64, error)        { return g.w.DiskUsage() }

func (g gitWorkspace) Layers() (Layers, bool) {
	l, ok := g.w.Layers()
	return Layers{Lower: l.Lower, Upper: l.Upper, Work: l.Work, FSMonitor: l.FSMonitor}, ok
}

func (g gitWorkspace) Changes(ctx context.Context, patchFile string, limits Limits) (*result.Changes, error) {
	c, err := g.w.Changes(ctx, workspace.ChangesOptions{
		PatchFile: patchFile,
		Limits:    workspace.ChangeLimits{File: limits.ChangedFile, Patch: limits.Patch},
	})
	if tl := (*workspace.TooLargeError)(nil); errors.As(err, &tl) {
		return nil, changesTooLarge(tl)
	}
	if err != nil {
		return nil, err
	}
	return &result.Changes{PatchFile: c.PatchFile, PatchSize: c.PatchSize, Files: fileChanges(c.Files)}, nil
}

func fileChanges(in []workspace.FileChange) []result.FileChange {
	out := make([]result.FileChange, len(in))
	for i, f := range in {
		out[i] = result.FileChange{Path: f.Path, OldPath: f.OldPath, Status: string(f.Status), Binary: f.Binary}
	}
	return out
}

// GitMerger consolidates kept patches onto the run's base commit with workspace.Merge.
type GitMerger struct {
	RepoDir string
	BaseSHA string
}

// Merge implements Merger. Merging patch by patch costs a few git processes each, which
// for hundreds of fanned-out agents takes seconds; so patches whose paths no other patch
// touches go first as one combined patch (they cannot conflict with each other, so the tree
// is the same as merging them in order), and only patches that share paths are merged one
// by one after it. Should the combined patch not apply, everything is merged one by one.
func (g *GitMerger) Merge(ctx context.Context, patches []NamedPatch) (*Merged, error) {
	alone, shared := partitionPatches(patches)
	if len(alone) > 1 {
		// The combined patch is named by its agents: the name ends up in the commit message.
		names := make([]string, len(alone))
		files := make([]string, len(alone))
		for k, i := range alone {
			names[k], files[k] = patches[i].Name, patches[i].File
		}
		combined, err := concatPatches(files)
		if err != nil {
			return nil, err
		}
		defer os.Remove(combined)
		in := []workspace.NamedPatch{{Name: strings.Join(names, ", "), File: combined}}
		for _, i := range shared {
			in = append(in, workspace.NamedPatch{Name: patches[i].Name, File: patches[i].File})
		}
		m, err := workspace.Merge(ctx, g.RepoDir, g.BaseSHA, in)
		if err != nil {
			return nil, err
		}
		if len(m.Conflicts) == 0 || m.Conflicts[0].Name != in[0].Name {
			applied := map[string]bool{}
			for _, n := range m.Applied[1:] {
				applied[n] = true
			}
			for _, i := range alone {
				applied[patches[i].Name] = true
			}
			m.Applied = m.Applied[:0]
			for _, p := range patches {
				if applied[p.Name] {
					m.Applied = append(m.Applied, p.Name)
				}
			}
			return merged(m), nil
		}
	}
	in := make([]workspace.NamedPatch, len(patches))
	for i, p := range patches {
		in[i] = workspace.NamedPatch{Name: p.Name, File: p.File}
	}
	m, err := workspace.Merge(ctx, g.RepoDir, g.BaseSHA, in)
	if err != nil {
		return nil, err
	}
	return merged(m), nil
}

func merged(m *workspace.MergeResult) *Merged {
	out := &Merged{Patch: m.Patch, Files: fileChanges(m.Files), Commit: m.Commit, Applied: m.Applied}
	for _, c := range m.Conflicts {
		out.Conflicts = append(out.Conflicts, result.Conflict{Job: c.Name, Files: c.Files})
	}
	return out
}

// concatPatches writes the patch files one after the other into a temporary file, each ending
// in a newline, streamed rather than read into memory, and returns its name.
func concatPatches(files []string) (string, error) {
	out, err := os.CreateTemp("", "agentrunner-combined-*.patch")
	if err != nil {
		return "", fmt.Errorf("combine patches: %w", err)
	}
	err = func() error {
		for _, name := range files {
			f, err := os.Open(name)
			if err != nil {
				return err
			}
			n, err := io.Copy(out, f)
			if err == nil && n > 0 {
				err = endsInNewline(f, n, out)
			}
			f.Close()
			if err != nil {
				return err
			}
		}
		return out.Close()
	}()
	if err != nil {
		out.Close()
		os.Remove(out.Name())
		return "", fmt.Errorf("combine patches: %w", err)
	}
	return out.Name(), nil
}

// endsInNewline writes a newline to out unless the n bytes of f end in one.
func endsInNewline(f *os.File, n int64, out io.Writer) error {
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, n-1); err != nil {
		return err
	}
	if last[0] == '\n' {
		return nil
	}
	_, err := out.Write([]byte{'\n'})
	return err
}

// partitionPatches returns the indexes of the patches whose paths no other patch touches,
// and of the others (including any whose paths cannot be read for sure), each in order.
func partitionPatches(patches []NamedPatch) (alone, shared []int) {
	owners := map[string]int{}
	paths := make([][]string, len(patches))
	ok := make([]bool, len(patches))
	for i, p := range patches {
		paths[i], ok[i] = patchFilePaths(p.File)
		for _, path := range paths[i] {
			owners[path]++
		}
	}
	for i := range patches {
		single := ok[i] && len(paths[i]) > 0
		for _, path := range paths[i] {
			if owners[path] > 1 {
				single = false
			}
		}
		if single {
			alone = append(alone, i)
		} else {
			shared = append(shared, i)
		}
	}
	return alone, shared
}

// patchFilePaths lists the paths a `git diff` patch file touches, from its `diff --git`
// headers and rename or copy lines, reading it line by line. It reports false when a header is
// ambiguous (quoted paths, or a rename header without its rename lines) or the file cannot be
// read, so such a patch is merged on its own.
func patchFilePaths(file string) ([]string, bool) {
	f, err := os.Open(file)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	// Headers are short; a longer line is content, and one past the buffer ends the scan
	// with an error (the patch is then merged on its own).
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		raw := sc.Bytes()
		if !bytes.HasPrefix(raw, []byte("diff --git ")) && !bytes.HasPrefix(raw, []byte("rename ")) && !bytes.HasPrefix(raw, []byte("copy ")) {
			continue
		}
		line := string(raw)
		switch {
		case strings.HasPrefix(line, "diff --git "):
			h := strings.TrimPrefix(line, "diff --git ")
			n := len(h)
			if strings.HasPrefix(h, "\"") || (n-5)%2 != 0 || n < 7 {
				return nil, false
			}
			half := (n - 5) / 2
			a, b := h[:2+half], h[2+half:]
			if !strings.HasPrefix(a, "a/") || !strings.HasPrefix(b, " b/") || a[2:] != b[3:] {
				// A rename or copy: its from/to lines follow.
				continue
			}
			out = append(out, a[2:])
		case strings.HasPrefix(line, "rename from "), strings.HasPrefix(line, "copy from "),
			strings.HasPrefix(line, "rename to "), strings.HasPrefix(line, "copy to "):
			p := line[strings.Index(line, " ")+1:]
			p = p[strings.Index(p, " ")+1:]
			if strings.HasPrefix(p, "\"") {
				return nil, false
			}
			out = append(out, p)
		}
	}
	return out, sc.Err() == nil
}
