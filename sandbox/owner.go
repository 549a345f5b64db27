package sandbox

import (
	"os"
	"strings"

	"github.com/agentrunner/agentrunner/internal/procid"
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

// ExecOwner is the LabelOwner value of the objects this process makes as a `runner exec`
// (procid's host:pid:start). Where the process cannot be identified the start time is 0, and
// ExecGone never calls such an owner gone while its pid lives.
func ExecOwner() string {
	id, err := procid.Self()
	if err != nil {
		host, _ := os.Hostname()
		id = procid.ID{Host: host, PID: os.Getpid()}
	}
	return ownerExec + id.String()
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
// pid is gone, or is now another process (its start time differs). An exec on another host or
// a value that does not parse is never called gone: nothing proves it.
func ExecGone(owner string) bool {
	rest, ok := strings.CutPrefix(owner, ownerExec)
	if !ok {
		return false
	}
	id, err := procid.Parse(rest)
	return err == nil && id.Gone()
}
