package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	// PatchFile holds a git binary patch (full object ids, renames detected) that `git apply`
	// and `git apply --3way` accept; empty when nothing changed. It is streamed there, never
	// held in memory.
	PatchFile string
	// PatchSize is the size of PatchFile in bytes.
	PatchSize int64
	// Files lists the changed files in path order.
	Files []FileChange
	// Tree is the id of the tree holding the workspace's final state.
	Tree string
}

// Empty reports whether nothing changed.
func (c *Changes) Empty() bool { return c.PatchSize == 0 }

// ChangeLimits bound what Changes collects; a zero field means no bound.
type ChangeLimits struct {
	// File is the largest size, in bytes, one changed file may have.
	File int64
	// Patch is the largest size, in bytes, of the patch.
	Patch int64
}

// ChangesOptions say where Changes writes the patch and how large the changes may be.
type ChangesOptions struct {
	// PatchFile is the file that receives the patch (created or truncated; removed when
	// nothing changed or the changes are too large). Empty means a file in the workspace's
	// private directory, which goes with the workspace.
	PatchFile string
	Limits    ChangeLimits
}

// TooLargeError says a job's changes exceed its ChangeLimits. Nothing of them is kept.
type TooLargeError struct {
	// Path is the changed file that is too large; empty when the patch is.
	Path string
	// Size is the file's size, or for the patch the size it reached when it was cut off.
	Size  int64
	Limit int64
}

func (e *TooLargeError) Error() string {
	if e.Path != "" {
		return fmt.Sprintf("changes too large: %s is %d bytes, over the limit of %d bytes on one changed file", e.Path, e.Size, e.Limit)
	}
	return fmt.Sprintf("changes too large: the patch exceeds the limit of %d bytes", e.Limit)
}

// Changes writes everything changed in the workspace against BaseSHA to a patch file: edits,
// new untracked files, deletions, binary files, renames and commits the agent made (what
// counts is the working tree's final state; files the workspace's .gitignore files exclude
// are not changes). It never reads the workspace's .git, which the agent controls: the files
// are hashed into the runner's private git directory with a temporary index, so no agent's
// blob ever reaches the source repository's object store here.
//
// Changes over opts.Limits end in a *TooLargeError and no patch file. A changed file over
// the limit is found by its size on disk before anything is hashed; the patch is cut off as
// soon as it passes its limit.
//
// In overlay mode only the job's upper layer is read (never the whole tree), with the same
// result: see overlayChanges.
func (w *Workspace) Changes(ctx context.Context, opts ChangesOptions) (*Changes, error) {
	if err := w.Ready(ctx); err != nil {
		return nil, err
	}
	if w.shared != nil {
		return w.overlayChanges(ctx, opts)
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
	if opts.Limits.File > 0 {
		if err := checkFileSizes(ctx, g, w.path, opts.Limits.File); err != nil {
			return nil, fmt.Errorf("changes of job %q: %w", w.jobID, err)
		}
	}
	if _, err := g.run(ctx, w.path, nil, "add", "--all", "--", "."); err != nil {
		return nil, fmt.Errorf("changes of job %q: hash working tree: %w", w.jobID, err)
	}
	tree, err := g.out(ctx, w.path, "write-tree")
	if err != nil {
		return nil, fmt.Errorf("changes of job %q: %w", w.jobID, err)
	}
	return w.writeChanges(ctx, g, w.path, tree, opts)
}

// writeChanges writes the patch from the base commit to tree (hashed by g, run in dir) where
// opts says, within its patch limit, and lists the changed files.
func (w *Workspace) writeChanges(ctx context.Context, g gitRunner, dir, tree string, opts ChangesOptions) (*Changes, error) {
	patchFile := opts.PatchFile
	if patchFile == "" {
		patchFile = filepath.Join(w.private, "changes.patch")
	}
	f, err := os.Create(patchFile)
	if err != nil {
		return nil, fmt.Errorf("changes of job %q: %w", w.jobID, err)
	}
	files, size, err := diffTrees(ctx, g, dir, w.base, tree, f, opts.Limits.Patch)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write %s: %w", patchFile, cerr)
	}
	if err != nil || size == 0 {
		os.Remove(patchFile)
	}
	if err != nil {
		return nil, fmt.Errorf("changes of job %q: %w", w.jobID, err)
	}
	c := &Changes{Files: files, PatchSize: size, Tree: tree}
	if size > 0 {
		c.PatchFile = patchFile
	}
	return c, nil
}

// checkFileSizes refuses, before anything is hashed, a working tree where a file that would be
// a change (untracked and not ignored, or modified) is larger than limit. Sizes come from
// lstat: links are not followed, and a sparse file counts at its full length, which is what
// hashing it would read.
func checkFileSizes(ctx context.Context, g gitRunner, dir string, limit int64) error {
	list, err := g.run(ctx, dir, nil, "ls-files", "-z", "--others", "--modified", "--exclude-standard")
	if err != nil {
		return fmt.Errorf("list changed files: %w", err)
	}
	for _, p := range bytes.Split(list, []byte{0}) {
		if len(p) == 0 {
			continue
		}
		fi, err := os.Lstat(filepath.Join(dir, string(p)))
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted, or a link (its target is not hashed)
		}
		if fi.Size() > limit {
			return &TooLargeError{Path: string(p), Size: fi.Size(), Limit: limit}
		}
	}
	return nil
}

// diffTrees writes the patch from commit base to tree to patch, cut off with a
// *TooLargeError once it passes maxPatch bytes (0: no bound), and lists the changed files.
func diffTrees(ctx context.Context, g gitRunner, dir, base, tree string, patch io.Writer, maxPatch int64) ([]FileChange, int64, error) {
	diffArgs := []string{"diff", "--no-color", "--no-ext-diff", "--no-textconv", "-M", "--full-index"}
	cw := &cappedWriter{w: patch, limit: maxPatch}
	lp := &listThenPatch{patch: cw}
	err := g.runTo(ctx, dir, lp, append(diffArgs, "-z", "--raw", "--numstat", "--binary", base, tree, "--")...)
	if cw.over {
		return nil, cw.n, &TooLargeError{Size: cw.n, Limit: maxPatch}
	}
	if err != nil {
		return nil, 0, fmt.Errorf("diff %s..%s: %w", base, tree, err)
	}
	if cw.n == 0 {
		if len(lp.lists) > 0 {
			return nil, 0, fmt.Errorf("diff %s..%s listed changed files but printed no patch", base, tree)
		}
		return nil, 0, nil
	}
	status, numstat, err := splitRawNumstat(lp.lists)
	if err != nil {
		return nil, 0, fmt.Errorf("list changed files %s..%s: %w", base, tree, err)
	}
	files, err := parseNameStatus(status, binaryPaths(numstat))
	return files, cw.n, err
}

// splitRawNumstat splits the output of `git diff -z --raw --numstat` into what
// `--name-status -z` and `--numstat -z` would have printed. Raw records come first, each a
// header starting with ':' and ending in the status, then one path (two for a rename or copy).
func splitRawNumstat(out []byte) (status, numstat []byte, err error) {
	var st bytes.Buffer
	rest := out
	for len(rest) > 0 && rest[0] == ':' {
		hdr, after, ok := bytes.Cut(rest, []byte{0})
		code := hdr[bytes.LastIndexByte(hdr, ' ')+1:]
		if !ok || len(code) == 0 {
			return nil, nil, fmt.Errorf("unexpected raw diff record %q", hdr)
		}
		st.Write(code)
		st.WriteByte(0)
		paths := 1
		if code[0] == 'R' || code[0] == 'C' {
			paths = 2
		}
		for range paths {
			p, next, ok := bytes.Cut(after, []byte{0})
			if !ok {
				return nil, nil, fmt.Errorf("raw diff record %q without its path", hdr)
			}
			st.Write(p)
			st.WriteByte(0)
			after = next
		}
		rest = after
	}
	return st.Bytes(), rest, nil
}

// errOverLimit stops a copy into a cappedWriter; the writer's over field says why.
var errOverLimit = errors.New("over the size limit")

// cappedWriter passes at most limit bytes on to w (every byte when limit is 0), then fails.
type cappedWriter struct {
	w     io.Writer
	limit int64
	n     int64
	over  bool
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	if c.limit > 0 && c.n+int64(len(p)) > c.limit {
		c.over = true
		c.n += int64(len(p))
		return 0, errOverLimit
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// parseNameStatus reads `git diff -z --name-status` output; binary says which paths are binary.
func parseNameStatus(status []byte, binary map[string]bool) ([]FileChange, error) {
	var out []FileChange
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
		out = append(out, fc)
	}
	return out, nil
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
