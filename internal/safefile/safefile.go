// Package safefile reads files that an agent could have touched (its output directory, files
// beside it) without letting the agent choose what the runner reads: a name is resolved
// beneath its directory without following any symlink, a FIFO or device is refused without
// blocking, and a read stops at a size limit. The runner reads these files as its own user,
// often root, so following an agent's symlink would hand it any host file.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotRegular is what Open and Read return (wrapped, naming the file) for anything but a
// regular file: a symlink, a directory, a named pipe, a device or a socket.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is what Read returns (wrapped, naming the file and the limit) for a file past
// its limit.
var ErrTooLarge = errors.New("file too large")

// Open opens the regular file name (slash-separated, relative) beneath dir for reading. No
// component of name may be a symlink, "..", or on another mount, and the file itself must be a
// regular file; a missing file gives an error that satisfies errors.Is(err, fs.ErrNotExist).
// dir itself is trusted: it is resolved as usual.
func Open(dir, name string) (*os.File, error) {
	clean, err := checkName(name)
	if err != nil {
		return nil, err
	}
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(root)

	parent, base := root, clean
	if i := strings.LastIndexByte(clean, '/'); i >= 0 {
		parent, err = openDirBeneath(root, clean[:i])
		if err != nil {
			return nil, describe(root, clean, err)
		}
		defer unix.Close(parent)
		base = clean[i+1:]
	}
	// Look before opening: opening a device can have effects of its own.
	var pre unix.Stat_t
	if err := unix.Fstatat(parent, base, &pre, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, describe(root, clean, err)
	}
	if pre.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, notRegular(clean, pre.Mode)
	}
	// O_NONBLOCK: should a FIFO take the file's place after the look, opening it must not
	// wait for a writer. O_NOFOLLOW: nor may a symlink.
	fd, err := unix.Openat(parent, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, describe(root, clean, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: clean, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, notRegular(clean, st.Mode)
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir, filepath.FromSlash(clean))), nil
}

// Read returns the content of the regular file name beneath dir (see Open), or an error
// wrapping ErrTooLarge when it holds more than limit bytes.
func Read(dir, name string, limit int64) ([]byte, error) {
	f, err := Open(dir, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes, the limit: %w", name, limit, ErrTooLarge)
	}
	return b, nil
}

// checkName refuses what could only mean a path outside the directory.
func checkName(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%q is not a relative file name", name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%q leaves its directory", name)
		}
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", fmt.Errorf("%q is not a relative file name", name)
	}
	return clean, nil
}

// openat2 is unix.Openat2, a variable so that a test can take the fallback of kernels
// without it.
var openat2 = unix.Openat2

// openDirBeneath opens the directory rel beneath root without following symlinks: with
// openat2 where the kernel has it (5.6+), else one component at a time.
func openDirBeneath(root int, rel string) (int, error) {
	fd, err := openat2(root, rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	// Seccomp profiles that predate openat2 answer EPERM rather than ENOSYS.
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
		return fd, err
	}
	var top unix.Stat_t
	if err := unix.Fstat(root, &top); err != nil {
		return -1, err
	}
	cur := root
	for _, c := range strings.Split(rel, "/") {
		next, err := unix.Openat(cur, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if cur != root {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur = next
		var st unix.Stat_t
		if err := unix.Fstat(cur, &st); err != nil || st.Dev != top.Dev {
			unix.Close(cur)
			if err == nil {
				err = unix.EXDEV
			}
			return -1, err
		}
	}
	return cur, nil
}

// describe turns a failed resolution of name into an error that says which component is at
// fault when it is not a directory or the file (a symlink, typically); other errors keep
// their errno so that fs.ErrNotExist still matches.
func describe(root int, name string, err error) error {
	if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.EXDEV) {
		return &os.PathError{Op: "open", Path: name, Err: err}
	}
	parts := strings.Split(name, "/")
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		var st unix.Stat_t
		// Only an lstat of names beneath root: safe whatever they are.
		if unix.Fstatat(root, sub, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			break
		}
		last := i == len(parts)-1
		if st.Mode&unix.S_IFMT == unix.S_IFLNK || !last && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if last {
				return notRegular(name, st.Mode)
			}
			return fmt.Errorf("%s is not a regular file: %s is %s, not a directory: %w", name, sub, kind(st.Mode), ErrNotRegular)
		}
	}
	if errors.Is(err, unix.EXDEV) {
		return fmt.Errorf("%s is not a regular file: its path crosses a mount point: %w", name, ErrNotRegular)
	}
	return fmt.Errorf("%s is not a regular file (%v): %w", name, err, ErrNotRegular)
}

func notRegular(name string, mode uint32) error {
	return fmt.Errorf("%s is not a regular file (%s): %w", name, kind(mode), ErrNotRegular)
}

// kind names a file type as an error message would.
func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return "a symlink"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFIFO:
		return "a named pipe"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFREG:
		return "a regular file"
	}
	return fmt.Sprintf("of type %#o", mode&unix.S_IFMT)
}
