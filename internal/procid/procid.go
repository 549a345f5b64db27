// Package procid names a running process so that another process can tell later, for sure,
// whether it is gone: by its host, its pid and the time it started (a pid alone is reused).
// `runner exec` names its workspaces and labels its containers with it, so the next exec can
// remove what a killed one left behind without touching anything of a live one.
package procid

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ID identifies one process.
type ID struct {
	Host  string
	PID   int
	Start uint64 // start time in clock ticks after boot (/proc/<pid>/stat field 22); 0 if unknown
}

// Self returns the ID of this process.
func Self() (ID, error) {
	host, err := os.Hostname()
	if err != nil {
		return ID{}, fmt.Errorf("identify this process: hostname: %w", err)
	}
	id := ID{Host: host, PID: os.Getpid()}
	if id.Start, err = startTime(id.PID); err != nil {
		return ID{}, fmt.Errorf("identify this process: %w", err)
	}
	return id, nil
}

// String returns host:pid:start, the form Parse reads.
func (id ID) String() string {
	return id.Host + ":" + strconv.Itoa(id.PID) + ":" + strconv.FormatUint(id.Start, 10)
}

// Parse reads host:pid:start.
func Parse(s string) (ID, error) {
	i := strings.LastIndexByte(s, ':')
	j := strings.LastIndexByte(s[:max(i, 0)], ':')
	if i < 0 || j <= 0 {
		return ID{}, fmt.Errorf("process id %q is not host:pid:start", s)
	}
	pid, err1 := strconv.Atoi(s[j+1 : i])
	start, err2 := strconv.ParseUint(s[i+1:], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return ID{}, fmt.Errorf("process id %q is not host:pid:start", s)
	}
	return ID{Host: s[:j], PID: pid, Start: start}, nil
}

// Gone reports whether the process is provably gone: it ran on this host and no process with
// its pid and start time exists. A process of another host is never gone from here.
func (id ID) Gone() bool {
	if host, err := os.Hostname(); err != nil || host != id.Host {
		return false
	}
	start, err := startTime(id.PID)
	if err == nil {
		return id.Start != 0 && start != id.Start
	}
	// No /proc entry: ask the kernel (a process hidden from this /proc still answers kill).
	return errors.Is(syscall.Kill(id.PID, 0), syscall.ESRCH)
}

// startTime reads pid's start time from /proc.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces or ')'.
	s := string(b)
	rest := s[strings.LastIndexByte(s, ')')+1:]
	f := strings.Fields(rest)
	// rest starts at field 3 (state); the start time is field 22.
	if len(f) < 20 {
		return 0, fmt.Errorf("read start time of pid %d: short /proc stat line", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}
