package workspace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// NamedPatch is one agent's patch file, as Changes wrote it, with the name conflicts are
// reported by. An empty File is an empty patch. Merge reads it from disk, so that no more than
// git's own reading of one patch at a time is ever in memory.
type NamedPatch struct {
	Name string
	File string
}

// Conflict is a patch Merge left out.
type Conflict struct {
	Name string
	// Files are the paths that conflicted (or, when the patch could not be merged at all, every
	// path it touches).
	Files []string
	// Reason is git's explanation, first line.
	Reason string
}

// MergeResult is the outcome of Merge.
type MergeResult struct {
	// Patch is the combined change against the base; empty when nothing applied.
	Patch []byte
	// Files lists what Patch changes.
	Files []FileChange
	// Commit is a commit of the combined tree with the base as parent, in the repository's
	// object store (no ref points at it); empty when nothing changed.
	Commit string
	// Applied names the patches that are in Patch, in order.
	Applied []string
	// Conflicts are the patches left out, in order.
	Conflicts []Conflict
}

// ErrEmptyPatch is returned by CommitPatch for a patch that changes nothing.
var ErrEmptyPatch = errors.New("patch changes nothing")

// Merge applies patches in order onto baseSHA of the repository at repoDir with a three-way
// merge (`git apply --3way` into a temporary index: no checkout, no ref changed, only objects
// written). Each patch is applied fully or not at all: one that conflicts with the patches before
// it is reported in Conflicts with the conflicting files and left out. A patch whose changes are
// already all present (two agents made the same change) applies cleanly as a no-op and is listed
// in Applied, so identical work is neither stacked twice nor reported as a conflict.
func Merge(ctx context.Context, repoDir, baseSHA string, patches []NamedPatch) (*MergeResult, error) {
	if err := checkSHA("base commit", baseSHA); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	s, err := newScratch(ctx, repoDir, baseSHA)
	if err != nil {
		return nil, fmt.Errorf("merge onto %s: %w", baseSHA, err)
	}
	defer s.close()
	res := &MergeResult{}
	cur := s.baseTree
	for _, p := range patches {
		if empty, err := emptyPatch(p.File); err != nil {
			return nil, fmt.Errorf("merge patch %q: %w", p.Name, err)
		} else if empty {
			res.Applied = append(res.Applied, p.Name)
			continue
		}
		_, applyErr := s.g.run(ctx, s.dir, nil, "apply", "--cached", "--3way", "--whitespace=nowarn", "--", p.File)
		if applyErr == nil {
			if cur, err = s.g.out(ctx, s.dir, "write-tree"); err != nil {
				return nil, fmt.Errorf("merge patch %q: %w", p.Name, err)
			}
			res.Applied = append(res.Applied, p.Name)
			continue
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("merge patch %q: %w", p.Name, ctx.Err())
		}
		files, err := s.unmerged(ctx)
		if err != nil {
			return nil, fmt.Errorf("merge patch %q: %w", p.Name, err)
		}
		// Never half-applied: back to the tree before this patch.
		if _, err := s.g.run(ctx, s.dir, nil, "read-tree", cur); err != nil {
			return nil, fmt.Errorf("merge patch %q: reset index: %w", p.Name, err)
		}
		if _, err := s.g.run(ctx, s.dir, nil, "apply", "--cached", "--reverse", "--check", "--", p.File); err == nil {
			res.Applied = append(res.Applied, p.Name)
			continue
		}
		reason := "three-way merge conflict with the patches applied before it"
		if len(files) == 0 {
			files = patchPaths(ctx, s, p.File)
			reason = firstErrorLine(applyErr)
		}
		res.Conflicts = append(res.Conflicts, Conflict{Name: p.Name, Files: files, Reason: reason})
	}
	if cur == s.baseTree {
		return res, nil
	}
	msg := fmt.Sprintf("agentrunner: consolidated changes\n\nApplied: %s\n", strings.Join(res.Applied, ", "))
	if len(res.Conflicts) > 0 {
		names := make([]string, len(res.Conflicts))
		for i, c := range res.Conflicts {
			names[i] = c.Name
		}
		msg += fmt.Sprintf("Left out (conflicts): %s\n", strings.Join(names, ", "))
	}
	if res.Commit, err = commitTree(ctx, s.g, s.dir, cur, s.base, msg, false); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	// The combined patch is what the run reports and stores, in memory: its parts were each
	// bounded by the jobs' limits.
	var patch bytes.Buffer
	if res.Files, _, err = diffTrees(ctx, s.g, s.dir, s.base, cur, &patch, 0); err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	res.Patch = patch.Bytes()
	return res, nil
}

// CommitPatch applies patch exactly (no merge) onto baseSHA of the repository at repoDir and
// writes a commit of the result with message, made by the runner. No ref changes.
func CommitPatch(ctx context.Context, repoDir, baseSHA string, patch []byte, message string) (string, error) {
	if err := checkSHA("base commit", baseSHA); err != nil {
		return "", fmt.Errorf("commit patch: %w", err)
	}
	if strings.TrimSpace(message) == "" {
		return "", errors.New("commit patch: message is empty")
	}
	if len(bytes.TrimSpace(patch)) == 0 {
		return "", fmt.Errorf("commit patch onto %s: %w", baseSHA, ErrEmptyPatch)
	}
	s, err := newScratch(ctx, repoDir, baseSHA)
	if err != nil {
		return "", fmt.Errorf("commit patch onto %s: %w", baseSHA, err)
	}
	defer s.close()
	if _, err := s.g.run(ctx, s.dir, patch, "apply", "--cached", "--whitespace=nowarn"); err != nil {
		return "", fmt.Errorf("commit patch onto %s: %w", baseSHA, err)
	}
	tree, err := s.g.out(ctx, s.dir, "write-tree")
	if err != nil {
		return "", fmt.Errorf("commit patch onto %s: %w", baseSHA, err)
	}
	if tree == s.baseTree {
		return "", fmt.Errorf("commit patch onto %s: %w", baseSHA, ErrEmptyPatch)
	}
	return commitTree(ctx, s.g, s.dir, tree, s.base, message, false)
}

// PushBranch force-pushes commitSHA of the repository at repoDir to refs/heads/<branch> of
// remoteURL. auth.Token goes to git as an Authorization header through the environment: never
// in argv, the URL, config or an error. Repository hooks do not run.
func PushBranch(ctx context.Context, repoDir, remoteURL, branch, commitSHA string, auth Auth) error {
	if err := checkRemoteURL(remoteURL); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	if err := checkSHA("commit", commitSHA); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	g, done, err := tempGitRunner()
	if err != nil {
		return err
	}
	defer done()
	if branch == "" || strings.HasPrefix(branch, "-") {
		return fmt.Errorf("push: branch name %q is not valid", branch)
	}
	if _, err := g.run(ctx, repoDir, nil, "check-ref-format", "refs/heads/"+branch); err != nil {
		return fmt.Errorf("push: branch name %q is not valid", branch)
	}
	gitDir, err := g.commonDir(ctx, repoDir)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	commit, err := g.resolveCommit(ctx, repoDir, commitSHA)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	ga := g.withAuth(remoteURL, auth).withEnv("GIT_DIR=" + gitDir)
	if _, err := ga.run(ctx, repoDir, nil, "push", "--quiet", "--no-verify", "--force", remoteURL, commit+":refs/heads/"+branch); err != nil {
		return fmt.Errorf("push %s to branch %s of %s: %w", commit, branch, ga.scrub(remoteURL), err)
	}
	return nil
}

// scratch is a temporary index over a repository's object store.
type scratch struct {
	g        gitRunner
	dir      string
	base     string
	baseTree string
	done     func()
}

func newScratch(ctx context.Context, repoDir, baseSHA string) (*scratch, error) {
	g, done, err := tempGitRunner()
	if err != nil {
		return nil, err
	}
	gitDir, err := g.commonDir(ctx, repoDir)
	if err != nil {
		done()
		return nil, err
	}
	base, err := g.resolveCommit(ctx, repoDir, baseSHA)
	if err != nil {
		done()
		return nil, err
	}
	dir := filepath.Join(g.home, "scratch")
	if err := os.Mkdir(dir, 0o700); err != nil {
		done()
		return nil, fmt.Errorf("create scratch directory: %w", err)
	}
	s := &scratch{
		g:    g.withEnv("GIT_DIR="+gitDir, "GIT_WORK_TREE="+dir, "GIT_INDEX_FILE="+filepath.Join(dir, ".index")),
		dir:  dir,
		base: base,
		done: done,
	}
	if s.baseTree, err = s.g.out(ctx, dir, "rev-parse", base+"^{tree}"); err != nil {
		done()
		return nil, err
	}
	if _, err := s.g.run(ctx, dir, nil, "read-tree", base); err != nil {
		done()
		return nil, err
	}
	return s, nil
}

func (s *scratch) close() { s.done() }

// unmerged lists the paths left at conflict stages in the index.
func (s *scratch) unmerged(ctx context.Context) ([]string, error) {
	out, err := s.g.run(ctx, s.dir, nil, "ls-files", "-u", "-z")
	if err != nil {
		return nil, err
	}
	var files []string
	for _, rec := range bytes.Split(out, []byte{0}) {
		if _, p, ok := strings.Cut(string(rec), "\t"); ok && !slices.Contains(files, p) {
			files = append(files, p)
		}
	}
	return files, nil
}

// emptyPatch reports whether the patch file is missing from the name or holds only space.
func emptyPatch(file string) (bool, error) {
	if file == "" {
		return true, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		n, err := f.Read(buf)
		if len(bytes.TrimSpace(buf[:n])) > 0 {
			return false, nil
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// patchPaths lists the paths a patch file touches.
func patchPaths(ctx context.Context, s *scratch, file string) []string {
	out, err := s.g.run(ctx, s.dir, nil, "apply", "--numstat", "-z", "--", file)
	if err != nil {
		return nil
	}
	var files []string
	for _, rec := range bytes.Split(out, []byte{0}) {
		parts := strings.SplitN(string(rec), "\t", 3)
		if len(parts) == 3 && parts[2] != "" {
			files = append(files, parts[2])
		}
	}
	return files
}

func firstErrorLine(err error) string {
	var ge *GitError
	if errors.As(err, &ge) {
		for _, line := range strings.Split(ge.Stderr, "\n") {
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "error:") || strings.HasPrefix(line, "fatal:") {
				return line
			}
		}
		if s := strings.TrimSpace(ge.Stderr); s != "" {
			lines := strings.Split(s, "\n")
			return strings.TrimSpace(lines[len(lines)-1])
		}
	}
	return err.Error()
}
