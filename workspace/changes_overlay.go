package workspace

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/agentrunner/agentrunner/internal/safefile"
)

// overlayChanges is Changes for an overlay workspace. It reads only the upper layer: the
// changed paths are copied (hard-linked where possible) into a temporary work tree beside the
// ignore and attribute files the merged tree has above them, and that tree is hashed with the
// same private git directory and base index a checkout-mode workspace uses. `git add` sees
// the same files at the same paths with the same rules, so the tree, and with it the patch,
// is the one checkout mode gives for the same edits.
func (w *Workspace) overlayChanges(ctx context.Context, opts ChangesOptions) (*Changes, error) {
	scan, err := scanUpper(w.path, w.shared.tree)
	if err != nil {
		return nil, fmt.Errorf("changes of job %q: %w", w.jobID, err)
	}
	tree, err := os.MkdirTemp(w.private, "changes-tree-")
	if err != nil {
		return nil, fmt.Errorf("changes of job %q: %w", w.jobID, err)
	}
	defer removeTree(tree)
	idx, err := os.CreateTemp(w.private, "changes-index-*")
	if err != nil {
		return nil, fmt.Errorf("changes of job %q: %w", w.jobID, err)
	}
	idx.Close()
	defer os.Remove(idx.Name())
	if err := copyFile(filepath.Join(w.shared.split, "index"), idx.Name(), 0o600); err != nil {
		return nil, fmt.Errorf("changes of job %q: %w", w.jobID, err)
	}
	g := w.m.git.withEnv("GIT_DIR="+w.private, "GIT_WORK_TREE="+tree, "GIT_INDEX_FILE="+idx.Name())

	if err := w.buildChangesTree(scan, tree); err != nil {
		return nil, fmt.Errorf("changes of job %q: %w", w.jobID, err)
	}
	// The files of an embedded repository are not changes of their own: the repository
	// (its directory) is, unless ignored.
	var present []upperEntry
	for _, e := range scan.present {
		if !scan.underEmbedded(e.rel) {
			present = append(present, e)
		}
	}
	for _, d := range scan.embedded {
		present = append(present, upperEntry{rel: d, mode: fs.ModeDir})
	}
	present, err = dropIgnored(ctx, g, tree, present)
	if err != nil {
		return nil, fmt.Errorf("changes of job %q: %w", w.jobID, err)
	}
	var files, repos []string
	for _, e := range present {
		if e.mode.IsDir() {
			repos = append(repos, e.rel)
		} else {
			files = append(files, e.rel)
		}
	}
	if opts.Limits.File > 0 {
		if err := w.checkUpperSizes(present, opts.Limits.File); err != nil {
			return nil, fmt.Errorf("changes of job %q: %w", w.jobID, err)
		}
	}
	// A path is a path, whatever characters it holds (check-ignore takes no pathspec magic).
	g = g.withEnv("GIT_LITERAL_PATHSPECS=1")
	if len(scan.removed) > 0 {
		if _, err := g.run(ctx, tree, nulList(scan.removed), "rm", "--cached", "-r", "-f", "-q", "--ignore-unmatch", "--pathspec-from-file=-", "--pathspec-file-nul"); err != nil {
			return nil, fmt.Errorf("changes of job %q: remove deleted paths: %w", w.jobID, err)
		}
	}
	if len(files) > 0 {
		// -f: the ignored paths are gone already, and one that was tracked must be added even
		// when the removal above just untracked it (an opaque directory holding it again).
		if _, err := g.run(ctx, tree, nulList(files), "add", "--all", "-f", "--pathspec-from-file=-", "--pathspec-file-nul"); err != nil {
			return nil, fmt.Errorf("changes of job %q: hash changed files: %w", w.jobID, err)
		}
	}
	if len(repos) > 0 {
		// Without -f: should the .git not make a repository after all, the directory's
		// files are added as `git add --all .` would, ignore rules and all.
		if _, err := g.run(ctx, tree, nulList(repos), "add", "--all", "--pathspec-from-file=-", "--pathspec-file-nul"); err != nil {
			return nil, fmt.Errorf("changes of job %q: add embedded repositories: %w", w.jobID, err)
		}
	}
	treeID, err := g.out(ctx, tree, "write-tree")
	if err != nil {
		return nil, fmt.Errorf("changes of job %q: %w", w.jobID, err)
	}
	return w.writeChanges(ctx, g, tree, treeID, opts)
}

// buildChangesTree fills the empty directory dst with the upper layer's changed entries and,
// for each directory above them, the .gitignore and .gitattributes the merged tree has there.
func (w *Workspace) buildChangesTree(scan *upperScan, dst string) error {
	have := map[string]bool{}
	for _, e := range scan.present {
		have[e.rel] = true
		if err := materialize(w.path, e, dst); err != nil {
			return err
		}
	}
	for _, d := range scan.embedded {
		if err := materializeGitDir(w.path, path.Join(d, ".git"), dst); err != nil {
			return err
		}
	}
	dirs := map[string]bool{}
	for _, e := range scan.present {
		for d := path.Dir(e.rel); !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			if d == "." {
				break
			}
		}
	}
	for d := range dirs {
		if !scan.lowerDirs[d] {
			continue // the merged directory is the upper layer's alone
		}
		for _, name := range []string{".gitignore", ".gitattributes"} {
			rel := path.Join(d, name)
			if have[rel] || scan.whiteouts[rel] {
				continue
			}
			info, err := os.Lstat(filepath.Join(w.shared.tree, filepath.FromSlash(rel)))
			if err != nil || info.IsDir() {
				continue
			}
			if err := materialize(w.shared.tree, upperEntry{rel: rel, mode: info.Mode(), size: info.Size()}, dst); err != nil {
				return err
			}
		}
	}
	return nil
}

// materialize recreates the entry e of the tree at root beneath dst: a hard link (a copy
// where the runner may not link) of a regular file, the same symlink, and for anything else a
// FIFO, which git treats as it treats any file it cannot add.
func materialize(root string, e upperEntry, dst string) error {
	target := filepath.Join(dst, filepath.FromSlash(e.rel))
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return err
	}
	src := filepath.Join(root, filepath.FromSlash(e.rel))
	switch {
	case e.mode.IsRegular():
		if err := os.Link(src, target); err == nil {
			return nil
		}
		return copyRegular(root, e, target)
	case e.mode&fs.ModeSymlink != 0:
		link, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("read link %s: %w", e.rel, err)
		}
		return os.Symlink(link, target)
	default:
		return syscall.Mkfifo(target, 0o600)
	}
}

// copyRegular copies the regular file e beneath root to target without following a link on
// the way, keeping its execute bit (all git records of a file's mode).
func copyRegular(root string, e upperEntry, target string) error {
	in, err := safefile.Open(root, e.rel)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600|(e.mode.Perm()&0o100))
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", e.rel, err)
	}
	return out.Close()
}

// dropIgnored returns the entries without the ones git would not add: paths the base does not
// track that the ignore files of the tree at dir exclude.
func dropIgnored(ctx context.Context, g gitRunner, dir string, entries []upperEntry) ([]upperEntry, error) {
	var fresh []string
	for _, e := range entries {
		if !e.inBase {
			fresh = append(fresh, e.rel)
		}
	}
	if len(fresh) == 0 {
		return entries, nil
	}
	out, err := g.run(ctx, dir, nulList(fresh), "check-ignore", "-z", "--stdin")
	if err != nil {
		if ge, ok := err.(*GitError); !ok || ge.ExitCode != 1 { // 1: nothing is ignored
			return nil, fmt.Errorf("check ignored files: %w", err)
		}
	}
	ignored := map[string]bool{}
	for _, p := range bytes.Split(out, []byte{0}) {
		if len(p) > 0 {
			ignored[string(p)] = true
		}
	}
	kept := entries[:0:0]
	for _, e := range entries {
		if !ignored[e.rel] {
			kept = append(kept, e)
		}
	}
	return kept, nil
}

// checkUpperSizes applies ChangeLimits.File as checkFileSizes does in checkout mode: a regular
// file over limit is refused when it is new or differs from the base.
func (w *Workspace) checkUpperSizes(entries []upperEntry, limit int64) error {
	for _, e := range entries {
		if !e.mode.IsRegular() || e.size <= limit {
			continue
		}
		if e.inBase && sameAsBase(w.path, w.shared.tree, e) {
			continue // copied up without a change to its content or mode (touch, chmod back)
		}
		return &TooLargeError{Path: e.rel, Size: e.size, Limit: limit}
	}
	return nil
}

// sameAsBase reports whether the regular file e of upper has the content and execute bit of
// the file at the same path in lower.
func sameAsBase(upper, lower string, e upperEntry) bool {
	info, err := os.Lstat(filepath.Join(lower, filepath.FromSlash(e.rel)))
	if err != nil || !info.Mode().IsRegular() || info.Size() != e.size || info.Mode()&0o100 != e.mode&0o100 {
		return false
	}
	a, err := safefile.Open(upper, e.rel)
	if err != nil {
		return false
	}
	defer a.Close()
	b, err := os.Open(filepath.Join(lower, filepath.FromSlash(e.rel)))
	if err != nil {
		return false
	}
	defer b.Close()
	bufA, bufB := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, errA := io.ReadFull(a, bufA)
		nb, errB := io.ReadFull(b, bufB)
		if na != nb || !bytes.Equal(bufA[:na], bufB[:nb]) {
			return false
		}
		if errA != nil || errB != nil {
			return errA == errB || (errA == io.ErrUnexpectedEOF && errB == io.ErrUnexpectedEOF)
		}
	}
}

// nulList joins paths, sorted, as NUL-terminated records for git's -z input.
func nulList(paths []string) []byte {
	sorted := append([]string(nil), paths...)
	sort.Strings(sorted)
	var b bytes.Buffer
	for _, p := range sorted {
		b.WriteString(p)
		b.WriteByte(0)
	}
	return b.Bytes()
}

// materializeGitDir recreates beneath dst what git reads of the embedded repository's git
// directory rel to add it as a gitlink: a .git file as it is, or of a .git directory its
// HEAD, refs, packed-refs and commondir, and an empty objects directory. Links are not
// followed, and nothing else (no config, no hook) is copied.
func materializeGitDir(root, rel, dst string) error {
	info, err := os.Lstat(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		return nil // gone meanwhile
	}
	if !info.IsDir() {
		return materialize(root, upperEntry{rel: rel, mode: info.Mode(), size: info.Size()}, dst)
	}
	if err := os.MkdirAll(filepath.Join(dst, filepath.FromSlash(rel), "objects"), 0o700); err != nil {
		return err
	}
	for _, name := range []string{"HEAD", "packed-refs", "commondir"} {
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(rel), name))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if err := materialize(root, upperEntry{rel: path.Join(rel, name), mode: fi.Mode(), size: fi.Size()}, dst); err != nil {
			return err
		}
	}
	refs := filepath.Join(root, filepath.FromSlash(rel), "refs")
	if fi, err := os.Lstat(refs); err != nil || !fi.IsDir() {
		return nil
	}
	return filepath.WalkDir(refs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, r), 0o700)
		case d.Type().IsRegular():
			return materialize(root, upperEntry{rel: filepath.ToSlash(r), mode: d.Type()}, dst)
		}
		return nil
	})
}
