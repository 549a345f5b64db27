package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// git inside an overlay workspace lstat()s and readdir()s every file of the untouched tree, each
// an overlayfs lookup: on a large repository `git status` is several times slower than on a plain
// checkout. The lower layer is read-only, so every change the agent makes is in the job's upper
// layer, bind-mounted read-only at FSMonitorUpper. The runner's executable, mounted a second time
// at FSMonitorPath, is then git's fsmonitor hook (core.fsmonitor, hook protocol version 2): it
// lists what the upper layer holds, and git checks only those paths. git runs core.fsmonitor
// through a shell unless the value has no shell metacharacter (a space is one), and images built
// FROM scratch have no shell; so the hook is chosen by the executable's name, not by a verb.
const (
	FSMonitorPath  = "/.agentrunner/fsmonitor"
	FSMonitorUpper = "/.agentrunner/upper"
	// FSMonitorName is the base name main dispatches on.
	FSMonitorName = "fsmonitor"
	// fsmonitorToken is the token the hook returns. Its value does not matter: the upper layer
	// holds every change since the job started, so the hook's answer is the same superset of the
	// changes since any token git passes.
	fsmonitorToken = "agentrunner-upper"
	// fsmonitorMaxEntries bounds the hook's work; past it the hook answers "/" (everything may
	// have changed) and git scans the whole tree, as it would without a hook.
	fsmonitorMaxEntries = 50000
	// overlayOpaque is the xattr the kernel sets, with the userxattr mount option overlayVolume
	// uses, on an upper directory that hides its lower counterpart (a directory deleted and made
	// again).
	overlayOpaque = "user.overlay.opaque"
)

// FSMonitorMain is the hook's main: `fsmonitor 2 <token>` with the upper layer at
// FSMonitorUpper. Any other version, or an unreadable upper layer, exits non-zero: git then scans
// the whole tree, slower but still correct.
func FSMonitorMain(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 || args[0] != "2" {
		fmt.Fprintln(stderr, "agentrunner fsmonitor: only hook protocol version 2 is spoken (core.fsmonitorHookVersion=2)")
		return 1
	}
	out, err := FSMonitorList(FSMonitorUpper, fsmonitorMaxEntries)
	if err != nil {
		fmt.Fprintf(stderr, "agentrunner fsmonitor: %v\n", err)
		return 1
	}
	if _, err := stdout.Write(out); err != nil {
		return 1
	}
	return 0
}

// FSMonitorList returns the version 2 answer for the upper layer at upper: the token, NUL, then
// each path the upper layer holds, NUL-terminated, relative to the workspace, with git's own
// directory left out. Files, symlinks and whiteouts (deleted files) are listed by name; a
// directory's name is listed (a file may have been added to it, which git's untracked cache must
// see), and an opaque directory as "dir/", which makes git check everything under it since its
// lower contents are gone. Past max entries the answer is "/", everything. Links are never
// followed.
func FSMonitorList(upper string, max int) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(fsmonitorToken)
	buf.WriteByte(0)
	n := 0
	everything := errors.New("too many entries")
	var walk func(dir, rel string) error
	walk = func(dir, rel string) error {
		f, err := os.Open(dir)
		if err != nil {
			return err
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return err
		}
		for _, name := range names {
			if rel == "" && name == ".git" {
				continue
			}
			if n++; n > max {
				return everything
			}
			path := filepath.Join(dir, name)
			relName := rel + name
			fi, err := os.Lstat(path)
			if err != nil {
				return err
			}
			if !fi.IsDir() {
				buf.WriteString(relName)
				buf.WriteByte(0)
				continue
			}
			if opaque(path) {
				buf.WriteString(relName + "/")
				buf.WriteByte(0)
			} else {
				buf.WriteString(relName)
				buf.WriteByte(0)
			}
			if err := walk(path, relName+"/"); err != nil {
				return err
			}
		}
		return nil
	}
	fi, err := os.Lstat(upper)
	if err != nil {
		return nil, fmt.Errorf("upper layer: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("upper layer %s is not a directory", upper)
	}
	if err := walk(upper, ""); err != nil {
		if !errors.Is(err, everything) {
			return nil, fmt.Errorf("read upper layer: %w", err)
		}
		buf.Reset()
		buf.WriteString(fsmonitorToken)
		buf.WriteByte(0)
		buf.WriteString("/")
		buf.WriteByte(0)
	}
	return buf.Bytes(), nil
}

// opaque tells whether the upper directory dir hides its lower counterpart. When the xattr
// cannot be read it answers yes: listing "dir/" is only slower, never wrong.
func opaque(dir string) bool {
	val := make([]byte, 8)
	n, err := syscall.Getxattr(dir, overlayOpaque, val)
	if err != nil {
		return !errors.Is(err, syscall.ENODATA)
	}
	return strings.HasPrefix(string(val[:n]), "y")
}
