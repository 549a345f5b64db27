package workspace

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// snapshot records the working tree of the repository at dir (tracked changes, deletions and
// untracked files its ignore rules do not exclude) as a commit whose parent is head, and returns
// it; head itself when the tree is clean. Blobs and the commit are written to the source's object
// store without touching its index, refs or files, like `git stash create`. Author and dates are
// fixed, so the same state always gives the same commit id and every job of a run shares it.
func snapshot(ctx context.Context, g gitRunner, dir, head string) (string, error) {
	gitDir, err := g.out(ctx, dir, "rev-parse", "--absolute-git-dir")
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", dir, err)
	}
	top, err := g.out(ctx, dir, "rev-parse", "--show-toplevel")
	if err != nil || top == "" {
		return "", fmt.Errorf("snapshot %s: IncludeUncommitted needs a repository with a working tree: %w", dir, err)
	}
	idx, err := os.CreateTemp(gitDir, "agentrunner-snapshot-index-*")
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", dir, err)
	}
	idx.Close()
	defer os.Remove(idx.Name())
	// Start from the repository's own index when it has one: its stat data spares hashing every
	// unchanged file.
	if err := copyFile(filepath.Join(gitDir, "index"), idx.Name(), 0o600); err != nil {
		os.Remove(idx.Name())
	}
	gi := g.withEnv("GIT_INDEX_FILE=" + idx.Name())
	if _, err := gi.run(ctx, top, nil, "add", "--all", "--", "."); err != nil {
		return "", fmt.Errorf("snapshot working tree of %s: %w", top, err)
	}
	tree, err := gi.out(ctx, top, "write-tree")
	if err != nil {
		return "", fmt.Errorf("snapshot working tree of %s: %w", top, err)
	}
	headTree, err := g.out(ctx, top, "rev-parse", "--verify", head+"^{tree}")
	if err != nil {
		return "", fmt.Errorf("snapshot %s: %w", top, err)
	}
	if tree == headTree {
		return head, nil
	}
	return commitTree(ctx, g, top, tree, head, "agentrunner: uncommitted changes\n\nThe working tree of the source when the run started.\n", true)
}

// commitTree writes a commit of tree with parent, made by the runner. With fixedDate the id
// depends only on content (snapshots shared by the jobs of a run).
func commitTree(ctx context.Context, g gitRunner, dir, tree, parent, message string, fixedDate bool) (string, error) {
	gc := g
	if fixedDate {
		gc = g.withEnv("GIT_AUTHOR_DATE=1700000000 +0000", "GIT_COMMITTER_DATE=1700000000 +0000")
	}
	sha, err := gc.run(ctx, dir, []byte(message), "commit-tree", tree, "-p", parent)
	if err != nil {
		return "", fmt.Errorf("commit tree %s: %w", tree, err)
	}
	return strings.TrimSpace(string(sha)), nil
}

// FileStatus is how a change touched a file.
type FileStatus string

// The statuses a FileChange can have.
const (
	Added    FileStatus = "added"
	Modified FileStatus = "modified"
	Deleted  FileStatus = "deleted"
	Renamed  FileStatus = "renamed"
)

// FileChange is one changed file.
type FileChange struct {
	Path    string     `json:"path"`
	OldPath string     `json:"old_path,omitempty"` // set for renames
	Status  FileStatus `json:"status"`
	Binary  bool       `json:"binary,omitempty"`
}

// Changes is what an agent changed against the workspace's base commit.
type Changes struct {
	// Patch is a git binary patch (full object ids, renames detected) that `git apply` and
	// `git apply --3way` accept; empty when nothing changed.
	Patch []byte
	// Files lists the changed files in path order.
	Files []FileChange
	// Tree is the id of the tree holding the workspace's final state.
	Tree string
}

// Empty reports whether nothing changed.
func (c *Changes) Empty() bool { return len(c.Patch) == 0 }

// Changes returns everything changed in the workspace against BaseSHA: edits, new untracked
// files, deletions, binary files, renames and commits the agent made (what counts is the
// working tree's final state; files the workspace's .gitignore files exclude are not changes).
// It never reads the workspace's .git, which the agent controls: the files are hashed into the
// runner's private git directory with a temporary index.
func (w *Workspace) Changes(ctx context.Context) (*Changes, error) {
	if err := w.Ready(ctx); err != nil {
		return nil, err
	}
	idx, err := os.CreateTemp(w.private, "changes-index-*")
	if err != nil {
		return nil, fmt.Errorf("changes of job %q: %w", w.jobID, err)
	}
	idx.Close()
	defer os.Remove(idx.Name())
	if err := copyFile(filepath.Join(w.private, "index"), idx.Name(), 0o600); err != nil {
		return nil, fmt.Errorf("changes of job %q: %w", w.jobID, err)
	}
	g := w.m.git.withEnv("GIT_DIR="+w.private, "GIT_WORK_TREE="+w.path, "GIT_INDEX_FILE="+idx.Name())
	if _, err := g.run(ctx, w.path, nil, "add", "--all", "--", "."); err != nil {
		return nil, fmt.Errorf("changes of job %q: hash working tree: %w", w.jobID, err)
	}
	tree, err := g.out(ctx, w.path, "write-tree")
	if err != nil {
		return nil, fmt.Errorf("changes of job %q: %w", w.jobID, err)
	}
	return diffTrees(ctx, g, w.path, w.base, tree)
}

// diffTrees describes the change from commit base to tree.
func diffTrees(ctx context.Context, g gitRunner, dir, base, tree string) (*Changes, error) {
	c := &Changes{Tree: tree}
	diffArgs := []string{"diff", "--no-color", "--no-ext-diff", "--no-textconv", "-M", "--full-index"}
	patch, err := g.run(ctx, dir, nil, append(diffArgs, "--binary", base, tree, "--")...)
	if err != nil {
		return nil, fmt.Errorf("diff %s..%s: %w", base, tree, err)
	}
	if len(patch) == 0 {
		return c, nil
	}
	c.Patch = patch
	status, err := g.run(ctx, dir, nil, append(diffArgs, "-z", "--name-status", base, tree, "--")...)
	if err != nil {
		return nil, fmt.Errorf("list changed files %s..%s: %w", base, tree, err)
	}
	numstat, err := g.run(ctx, dir, nil, append(diffArgs, "-z", "--numstat", base, tree, "--")...)
	if err != nil {
		return nil, fmt.Errorf("list changed files %s..%s: %w", base, tree, err)
	}
	binary := binaryPaths(numstat)
	f := bytes.Split(bytes.TrimSuffix(status, []byte{0}), []byte{0})
	for i := 0; i < len(f); i++ {
		code := string(f[i])
		if code == "" || i+1 >= len(f) {
			break
		}
		fc := FileChange{Path: string(f[i+1])}
		i++
		switch code[0] {
		case 'A':
			fc.Status = Added
		case 'D':
			fc.Status = Deleted
		case 'R', 'C':
			if i+1 >= len(f) {
				return nil, fmt.Errorf("parse name-status: rename of %s without a new name", fc.Path)
			}
			fc.OldPath, fc.Path = fc.Path, string(f[i+1])
			fc.Status = Renamed
			i++
		default:
			fc.Status = Modified
		}
		fc.Binary = binary[fc.Path]
		c.Files = append(c.Files, fc)
	}
	return c, nil
}

// binaryPaths parses `git diff --numstat -z` output and returns the paths diffed as binary.
func binaryPaths(numstat []byte) map[string]bool {
	out := map[string]bool{}
	f := bytes.Split(numstat, []byte{0})
	for i := 0; i < len(f); i++ {
		rec := string(f[i])
		if rec == "" {
			continue
		}
		parts := strings.SplitN(rec, "\t", 3)
		if len(parts) < 3 {
			continue
		}
		path := parts[2]
		if path == "" && i+2 < len(f) { // rename: "a\tb\t\0old\0new"
			path = string(f[i+2])
			i += 2
		}
		if parts[0] == "-" && parts[1] == "-" {
			out[path] = true
		}
	}
	return out
}
