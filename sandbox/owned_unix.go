package sandbox

import (
	"os"
	"syscall"
)

// owned reports whether path belongs to uid:gid already.
func owned(path string, uid, gid int) bool {
	fi, err := os.Lstat(path)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == uid && int(st.Gid) == gid
}
