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
//
// Telling which paths changed needs the lower layer too (FSMonitorLower): a file the agent wrote
// where the commit had a directory replaces the directory's whiteout, and nothing in the upper
// layer then says that the files below it are gone.
const (
	FSMonitorPath  = "/.agentrunner/fsmonitor"
	FSMonitorUpper = "/.agentrunner/upper"
	FSMonitorLower = "/.agentrunner/lower"
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

// FSMonitorMain is the hook's main: `fsmonitor 2 <token>`, run by git at the root of the work
// tree. It answers with the token git passed (the upper layer holds every change since the job
// started, so the answer is a superset of the changes since any token). Run for any other work
// tree (a repository the agent cloned, a worktree it added: both share nothing with the upper
// layer) it answers "everything". Any other version, or an unreadable layer, exits non-zero:
// git then scans the whole tree, slower but still correct.
func FSMonitorMain(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 || args[0] != "2" {
		fmt.Fprintln(stderr, "agentrunner fsmonitor: only hook protocol version 2 is spoken (core.fsmonitorHookVersion=2)")
		return 1
	}
	token := fsmonitorToken
	if len(args) > 1 && args[1] != "" && !strings.ContainsRune(args[1], 0) {
		token = args[1]
	}
	var out []byte
	if wd, err := os.Getwd(); err != nil || wd != WorkspacePath {
		out = everything(token)
	} else if out, err = FSMonitorList(FSMonitorUpper, FSMonitorLower, token, fsmonitorMaxEntries); err != nil {
		fmt.Fprintf(stderr, "agentrunner fsmonitor: %v\n", err)
		return 1
	}
	if _, err := stdout.Write(out); err != nil {
		return 1
	}
	return 0
}

// everything is the answer that makes git check the whole tree.
func everything(token string) []byte {
	return []byte(token + "\x00/\x00")
}

// FSMonitorList returns the version 2 answer for the upper layer at upper over the lower layer
// at lower: the token, NUL, then each path that may have changed, NUL-terminated, relative to
// the workspace, with git's own directory left out. Every name the upper layer holds is listed
// (files, symlinks, whiteouts of deleted files, and directories: a file may have been added to
// one, which git's untracked cache must see). "dir/" makes git check everything under dir; it
// is added where the lower layer's directory dir is gone or hidden: an opaque directory, or a
// whiteout or a non-directory over a lower directory. Past max entries the answer is "/",
// everything. Links are never followed.
func FSMonitorList(upper, lower, token string, max int) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(token)
	buf.WriteByte(0)
	n := 0
	tooMany := errors.New("too many entries")
	add := func(name string) error {
		if n++; n > max {
			return tooMany
		}
		buf.WriteString(name)
		buf.WriteByte(0)
		return nil
	}
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
			path := filepath.Join(dir, name)
			relName := rel + name
			fi, err := os.Lstat(path)
			if err != nil {
				return err
			}
			if err := add(relName); err != nil {
				return err
			}
			var hidesLower bool
			if fi.IsDir() {
				hidesLower = opaque(path)
			} else {
				lfi, err := os.Lstat(filepath.Join(lower, filepath.FromSlash(relName)))
				hidesLower = err == nil && lfi.IsDir()
			}
			if hidesLower {
				if err := add(relName + "/"); err != nil {
					return err
				}
			}
			if fi.IsDir() {
				if err := walk(path, relName+"/"); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, dir := range []string{upper, lower} {
		fi, err := os.Lstat(dir)
		if err != nil {
			return nil, fmt.Errorf("overlay layer: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("overlay layer %s is not a directory", dir)
		}
	}
	if err := walk(upper, ""); err != nil {
		if !errors.Is(err, tooMany) {
			return nil, fmt.Errorf("read upper layer: %w", err)
		}
		return everything(token), nil
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
