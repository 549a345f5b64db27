package runner

import (
	"context"

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
func (g *GitWorkspaces) Create(ctx context.Context, runID, jobID string) (Workspace, error) {
	w, err := g.Manager.Create(ctx, g.Source, runID, jobID, g.Owner)
	if err != nil {
		return nil, err
	}
	return gitWorkspace{w}, nil
}

type gitWorkspace struct{ w *workspace.Workspace }

func (g gitWorkspace) Path() string                     { return g.w.Path() }
func (g gitWorkspace) Remove(ctx context.Context) error { return g.w.Remove(ctx) }
func (g gitWorkspace) ContainerEnv() []string           { return g.w.ContainerEnv() }

func (g gitWorkspace) Changes(ctx context.Context) (*result.Changes, error) {
	c, err := g.w.Changes(ctx)
	if err != nil {
		return nil, err
	}
	return &result.Changes{Patch: c.Patch, Files: fileChanges(c.Files)}, nil
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

// Merge implements Merger.
func (g *GitMerger) Merge(ctx context.Context, patches []NamedPatch) (*Merged, error) {
	in := make([]workspace.NamedPatch, len(patches))
	for i, p := range patches {
		in[i] = workspace.NamedPatch{Name: p.Name, Patch: p.Patch}
	}
	m, err := workspace.Merge(ctx, g.RepoDir, g.BaseSHA, in)
	if err != nil {
		return nil, err
	}
	out := &Merged{Patch: m.Patch, Files: fileChanges(m.Files), Commit: m.Commit, Applied: m.Applied}
	for _, c := range m.Conflicts {
		out.Conflicts = append(out.Conflicts, result.Conflict{Job: c.Name, Files: c.Files})
	}
	return out, nil
}
