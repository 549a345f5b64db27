package safefile

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Removed is one entry Defuse took out of a directory, and why.
type Removed struct {
	Name string // slash-separated, relative to the directory
	Why  string // "a symlink", "a git directory", ...
}

// Defuse makes a directory an agent wrote safe to keep where people and their tools look
// (`runner exec` keeps each job's output directory under .agents/.runs/ in the user's
// repository): it removes everything that is neither a regular file nor a directory
// (symlinks, named pipes, devices, sockets), every entry named .git in any case (a planted
// repository whose config runs commands when an editor or a shell prompt runs git there), and
// clears set-id, sticky and execute bits. It never follows a link. It returns what it removed,
// in name order; an error stops it where it was.
func Defuse(dir string) ([]Removed, error) {
	var removed []Removed
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		var why string
		switch {
		case strings.EqualFold(d.Name(), ".git"):
			why = "a git directory"
			if !d.IsDir() {
				why = "a git link file"
			}
		case d.Type()&fs.ModeSymlink != 0:
			why = "a symlink"
		case !d.Type().IsRegular() && !d.IsDir():
			info, ierr := d.Info()
			if ierr != nil {
				return ierr
			}
			why = kind(modeBits(info.Mode()))
		}
		if why != "" {
			removed = append(removed, Removed{Name: rel, Why: why})
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o644)
		if d.IsDir() {
			want = 0o755
		}
		if info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != want {
			return os.Chmod(p, want)
		}
		return nil
	})
	sort.Slice(removed, func(i, j int) bool { return removed[i].Name < removed[j].Name })
	return removed, err
}

// modeBits converts an fs.FileMode's type to the unix S_IFMT bits kind names.
func modeBits(m fs.FileMode) uint32 {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return unix.S_IFIFO
	case m&fs.ModeSocket != 0:
		return unix.S_IFSOCK
	case m&fs.ModeCharDevice != 0:
		return unix.S_IFCHR
	case m&fs.ModeDevice != 0:
		return unix.S_IFBLK
	}
	return 0
}
