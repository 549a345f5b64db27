package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Labels that say who made a Docker object, so that a start-up sweep removes only its own
// leftovers and those of owners that are provably gone, never the live agents of another
// daemon or of a `runner exec` on the same engine.
const (
	// LabelOwner is "daemon:<daemon id>" or "exec:<hostname>:<pid>:<start>", where start is
	// the process's start time in clock ticks since boot (/proc/<pid>/stat field 22), so a
	// reused pid does not pass for the process that made the object.
	LabelOwner = "agentrunner.owner"
	// LabelStore is the identity of the store of the daemon that made the object (a daemon's
	// leases are only visible in its own store).
	LabelStore = "agentrunner.store"
)

// Owner kinds, the prefix of a LabelOwner value.
const (
	ownerDaemon = "daemon:"
	ownerExec   = "exec:"
)

// DaemonOwner is the LabelOwner value of the objects made by the daemon that leases under id.
func DaemonOwner(id string) string { return ownerDaemon + id }

// DaemonOf returns the daemon id of a LabelOwner value, and whether it names a daemon.
func DaemonOf(owner string) (string, bool) {
	id, ok := strings.CutPrefix(owner, ownerDaemon)
	return id, ok && id != ""
}

// ExecOwner is the LabelOwner value of the objects this process makes as a `runner exec`. On a
// system without /proc the start time is 0, and ExecGone never calls such an owner gone.
func ExecOwner() string {
	host, _ := os.Hostname()
	pid := os.Getpid()
	start, _ := processStart(pid)
	return fmt.Sprintf("%s%s:%d:%d", ownerExec, host, pid, start)
}

// OwnerLabels are the labels to put on every object made for owner (DaemonOwner or ExecOwner)
// whose store, for a daemon, is storeID ("" for an exec).
func OwnerLabels(owner, storeID string) map[string]string {
	l := map[string]string{LabelOwner: owner}
	if storeID != "" {
		l[LabelStore] = storeID
	}
	return l
}

// ExecGone reports whether owner names a `runner exec` on this host that no longer runs: its
// pid is gone, or is now another process (its start time differs). An exec on another host,
// a value that does not parse, or a host without /proc is never called gone: nothing proves it.
func ExecGone(owner string) bool {
	rest, ok := strings.CutPrefix(owner, ownerExec)
	if !ok {
		return false
	}
	// The hostname cannot hold a colon; pid and start are the last two fields.
	parts := strings.Split(rest, ":")
	if len(parts) != 3 {
		return false
	}
	host, _ := os.Hostname()
	pid, err1 := strconv.Atoi(parts[1])
	start, err2 := strconv.ParseUint(parts[2], 10, 64)
	if parts[0] != host || err1 != nil || err2 != nil || pid <= 0 || start == 0 {
		return false
	}
	if _, err := processStart(os.Getpid()); err != nil {
		return false // no /proc here: liveness cannot be read
	}
	got, err := processStart(pid)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	return err == nil && got != start
}

// processStart reads the start time of pid, in clock ticks since boot, from /proc/<pid>/stat.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Field 2, the command, is in parentheses and may hold spaces and parentheses itself:
	// the fields after it start after the last ')'. Field 22 is the 20th of those.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command, want at least 20", pid, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64)
}
