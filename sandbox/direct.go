package sandbox

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A container on an allow-listed network reaches the world only through the egress proxy: the
// network has no route out, so a connection that bypasses the proxy fails. The proxy never
// sees such an attempt, so it cannot report it. The kernel does: until the attempt gives up,
// the container's network namespace holds a TCP socket in SYN_SENT towards the destination.
// directWatcher polls the namespace's socket tables (/proc/<pid>/net/tcp and tcp6 of the
// container's first process, read from the host) and keeps every such destination.
//
// It needs the runner to see the engine's process ids (a runner on the host, or in a container
// sharing the host's pid namespace). Elsewhere it reports itself unavailable rather than
// reading some other process's sockets: the pid's cgroup must name the container.

// directPollInterval is how often the socket tables are read. A blocked SYN is retried for
// about a second before the first retransmission, so an attempt lives far longer than this.
const directPollInterval = 50 * time.Millisecond

// tcpSynSent is the state column of a socket in SYN_SENT in /proc/net/tcp.
const tcpSynSent = "02"

type directWatcher struct {
	procDir string        // /proc/<pid>
	ignore  netip.Addr    // the proxy: connections to it are the allowed path
	stop    chan struct{} // closed to stop polling
	stopped sync.Once     // closes stop
	done    chan struct{} // closed when polling has stopped
	mu      sync.Mutex    // guards seen and order
	seen    map[string]bool
	order   []string // "ip:port", in the order first seen
}

// errDirectUnavailable means the container's sockets cannot be read from here.
var errDirectUnavailable = errors.New("the container's process is not visible from the runner (is the runner in a container without the host's pid namespace?)")

// watchDirect starts polling the sockets of the container whose first process is pid. proxy is
// the proxy's address on the container's network (empty: none is exempt).
func watchDirect(procRoot string, pid int, containerID, proxy string) (*directWatcher, error) {
	dir := fmt.Sprintf("%s/%d", procRoot, pid)
	cg, err := os.ReadFile(dir + "/cgroup")
	if err != nil || pid <= 0 || containerID == "" || !bytes.Contains(cg, []byte(containerID)) {
		return nil, errDirectUnavailable
	}
	w := &directWatcher{procDir: dir, stop: make(chan struct{}), done: make(chan struct{}), seen: map[string]bool{}}
	if a, err := netip.ParseAddr(proxy); err == nil {
		w.ignore = a.Unmap()
	}
	w.poll()
	go func() {
		defer close(w.done)
		t := time.NewTicker(directPollInterval)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				w.poll()
			}
		}
	}()
	return w, nil
}

// finish stops polling, reads the tables a last time, and returns every destination seen.
// It may be called more than once.
func (w *directWatcher) finish() []string {
	w.stopped.Do(func() { close(w.stop) })
	<-w.done
	w.poll()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.order
}

func (w *directWatcher) poll() {
	for _, f := range []string{"/net/tcp", "/net/tcp6"} {
		data, err := os.ReadFile(w.procDir + f)
		if err != nil {
			continue // the container has exited, or has no IPv6
		}
		for _, dst := range synSent(data) {
			if dst.Addr() == w.ignore || dst.Addr().IsLoopback() {
				continue
			}
			key := dst.String()
			w.mu.Lock()
			if !w.seen[key] {
				w.seen[key] = true
				w.order = append(w.order, key)
			}
			w.mu.Unlock()
		}
	}
}

// synSent returns the remote ends of the sockets in SYN_SENT in a /proc/net/tcp or tcp6 table.
// Lines it cannot read are skipped: the format is the kernel's, and a surprise in it must not
// stop the agent.
func synSent(table []byte) []netip.AddrPort {
	var out []netip.AddrPort
	sc := bufio.NewScanner(bytes.NewReader(table))
	sc.Scan() // the header line
	for sc.Scan() {
		// sl local_address rem_address st ...
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[3] != tcpSynSent {
			continue
		}
		if ap, ok := parseProcAddr(f[2]); ok {
			out = append(out, ap)
		}
	}
	return out
}

// parseProcAddr reads "0100007F:0050" (IPv4) or 32 hex digits and a port (IPv6). The address
// is written as 32-bit words in the kernel's byte order, which is little-endian on every
// platform Docker runs on; the port is plain hex.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, false
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(hexAddr)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, false
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), true
}
