package workspace

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The marks an overlay mounted with the userxattr option leaves in its upper layer: a
// directory hiding everything beneath it in the lower layer, and (a character device 0:0) a
// deleted entry.
const opaqueXattr = "user.overlay.opaque"

// upperScan is what an overlay workspace's upper layer says about the merged tree, read
// without looking at the lower layer beyond the paths the upper layer names.
type upperScan struct {
	// present are the entries (not directories) the merged tree has from the upper layer:
	// files, symlinks, and anything else the agent made (FIFOs, sockets, devices other than
	// whiteouts).
	present []upperEntry
	// removed are the paths whose content in the base is gone unless present says otherwise:
	// whiteouts, opaque directories, and entries of another type than the base has there.
	removed []string
	// lowerDirs are the directories whose lower counterpart shows through in the merged tree,
	// for the ignore and attribute files the upper layer does not replace.
	lowerDirs map[string]bool
	// whiteouts are the deleted paths, so a deleted .gitignore is not taken from the base.
	whiteouts map[string]bool
	// embedded are the new directories holding a .git of their own (a repository the agent
	// cloned or made): `git add --all` adds such a directory as one gitlink, not its files.
	// present keeps the entries below them, for the directory's content.
	embedded []string
}

// underEmbedded reports whether rel is below one of the embedded repositories.
func (s *upperScan) underEmbedded(rel string) bool {
	for _, d := range s.embedded {
		if strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

// upperEntry is one non-directory in the upper layer.
type upperEntry struct {
	rel    string // slash-separated, relative to the workspace root
	mode   fs.FileMode
	size   int64
	inBase bool // the base commit has a file or symlink at rel: git tracks it
}

// scanUpper walks the upper layer upper over the shared checkout lower. It never follows a
// link and reads nothing of lower but lstat of the paths the upper layer holds (and of their
// parent directories). Like `git add --all`, it skips every entry named .git.
func scanUpper(upper, lower string) (*upperScan, error) {
	s := &upperScan{lowerDirs: map[string]bool{".": true}, whiteouts: map[string]bool{}}
	// inLower tracks, per directory, whether lower holds a real directory there (opaque or
	// not: tracked-ness), and lowerDirs whether it shows through.
	inLower := map[string]bool{".": true}
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(upper, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		parent := path.Dir(rel)
		if d.Name() == ".git" {
			// A new directory with a .git of its own is an embedded repository; one the base
			// has stays a directory here (its files are taken one by one).
			if parent != "." && !inLower[parent] && !s.underEmbedded(parent+"/") {
				s.embedded = append(s.embedded, parent)
			}
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		var lowerInfo fs.FileInfo
		if inLower[parent] {
			lowerInfo, _ = os.Lstat(filepath.Join(lower, filepath.FromSlash(rel)))
		}
		lowerIsDir := lowerInfo != nil && lowerInfo.IsDir()
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			opaque, err := isOpaque(p)
			if err != nil {
				return err
			}
			inLower[rel] = lowerIsDir
			s.lowerDirs[rel] = lowerIsDir && !opaque && s.lowerDirs[parent]
			if lowerInfo != nil && (opaque || !lowerIsDir) {
				s.removed = append(s.removed, rel)
			}
			return nil
		}
		if isWhiteout(info) {
			s.whiteouts[rel] = true
			if lowerInfo != nil {
				s.removed = append(s.removed, rel)
			}
			return nil
		}
		if lowerIsDir {
			s.removed = append(s.removed, rel)
		}
		s.present = append(s.present, upperEntry{rel: rel, mode: info.Mode(), size: info.Size(), inBase: lowerInfo != nil && !lowerIsDir})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read upper layer %s: %w", upper, err)
	}
	// git stops at the outermost repository: one found inside another (visited first, as
	// "-x" sorts before ".git") is part of it.
	outer := s.embedded[:0:0]
	for _, d := range s.embedded {
		if !s.underEmbedded(d) {
			outer = append(outer, d)
		}
	}
	s.embedded = outer
	return s, nil
}

// isWhiteout reports whether info is an overlay whiteout: a character device 0:0.
func isWhiteout(info fs.FileInfo) bool {
	if info.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

// isOpaque reports whether the directory p carries the overlay's opaque mark.
func isOpaque(p string) (bool, error) {
	var buf [8]byte
	n, err := unix.Lgetxattr(p, opaqueXattr, buf[:])
	switch {
	case err == nil:
		return n == 1 && buf[0] == 'y', nil
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
		return false, nil
	}
	return false, fmt.Errorf("read %s of %s: %w", opaqueXattr, p, err)
}
