package carry

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// The workspace travels between the daemon and the pod as a tar stream of trees, each under a
// prefix ("workspace/", "out/"). Both ends treat the other's stream as hostile: paths stay
// beneath their tree (os.Root), links are recreated, never followed, only directories, regular
// files and symbolic links travel, and sizes are bounded.

// Limits bound one tar stream.
type Limits struct {
	Bytes   int64 // regular files' contents, in all
	Entries int
}

// WriteTrees writes each tree of dirs (prefix → directory) into w. FIFOs, devices and sockets
// are left out; a file is opened without following links and without blocking, and must still
// be a regular file once open.
func WriteTrees(w io.Writer, dirs map[string]string, lim Limits) error {
	tw := tar.NewWriter(w)
	var total int64
	entries := 0
	for _, prefix := range slices.Sorted(maps.Keys(dirs)) {
		root := dirs[prefix]
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, p)
			if err != nil || rel == "." {
				return err
			}
			if entries++; entries > lim.Entries {
				return fmt.Errorf("more than %d files", lim.Entries)
			}
			name := prefix + "/" + filepath.ToSlash(rel)
			info, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case d.IsDir():
				return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: int64(info.Mode().Perm())})
			case d.Type()&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target})
			case d.Type().IsRegular():
				total += info.Size()
				if total > lim.Bytes {
					return fmt.Errorf("more than %d bytes", lim.Bytes)
				}
				return writeFile(tw, name, p)
			}
			return nil // a FIFO, a device, a socket: not part of a workspace
		})
		if err != nil {
			return fmt.Errorf("%s: %w", prefix, err)
		}
	}
	return tw.Close()
}

func writeFile(tw *tar.Writer, name, p string) error {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil // replaced by something else since the walk saw it
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(info.Mode().Perm()), Size: info.Size()}); err != nil {
		return err
	}
	// A file that grows while it is read stops at the size in the header.
	_, err = io.CopyN(tw, f, info.Size())
	return err
}

// ReadTrees extracts r into roots (prefix → an empty directory), refusing any entry outside a
// known prefix, any path leaving its tree, any type but a directory, a regular file or a
// symbolic link, and anything past lim.
func ReadTrees(r io.Reader, roots map[string]string, lim Limits) error {
	opened := map[string]*os.Root{}
	defer func() {
		for _, rt := range opened {
			rt.Close()
		}
	}()
	tr := tar.NewReader(r)
	var total int64
	for entries := 0; ; entries++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the archive: %w", err)
		}
		if entries >= lim.Entries {
			return fmt.Errorf("more than %d files", lim.Entries)
		}
		prefix, rel, _ := strings.Cut(strings.TrimSuffix(h.Name, "/"), "/")
		dir, ok := roots[prefix]
		if !ok || rel == "" || !filepath.IsLocal(rel) || path.Clean(rel) != rel {
			return fmt.Errorf("%q: not a path beneath a known tree", h.Name)
		}
		rt := opened[prefix]
		if rt == nil {
			if rt, err = os.OpenRoot(dir); err != nil {
				return err
			}
			opened[prefix] = rt
		}
		if parent := path.Dir(rel); parent != "." {
			if err := rt.MkdirAll(parent, 0o755); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := rt.MkdirAll(rel, 0o755); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			if err := rt.Chmod(rel, fs.FileMode(h.Mode).Perm()|0o700); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		case tar.TypeSymlink:
			_ = rt.Remove(rel)
			if err := rt.Symlink(h.Linkname, rel); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		case tar.TypeReg:
			if total += h.Size; total > lim.Bytes {
				return fmt.Errorf("more than %d bytes", lim.Bytes)
			}
			if err := extractFile(rt, rel, fs.FileMode(h.Mode).Perm(), tr, h.Size); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		default:
			return fmt.Errorf("%q: type %q is not a directory, a file or a symbolic link", h.Name, string(h.Typeflag))
		}
	}
}

// extractFile writes a regular file at rel, replacing whatever was there: never through a
// link that an earlier entry made.
func extractFile(rt *os.Root, rel string, mode fs.FileMode, r io.Reader, size int64) error {
	if fi, err := rt.Lstat(rel); err == nil && !fi.IsDir() {
		if err := rt.Remove(rel); err != nil {
			return err
		}
	}
	f, err := rt.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode|0o600)
	if err != nil {
		return err
	}
	_, err = io.CopyN(f, r, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
