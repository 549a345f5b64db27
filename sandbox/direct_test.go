package sandbox

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A table as the kernel writes it: a listener, an established connection, and two attempts in
// SYN_SENT (one to 192.0.2.1:80, one to the proxy 172.18.0.2:3128).
const procTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 10001        0 4242 1 0000000000000000 100 0 0 10 0
   1: 020012AC:A2C4 020012AC:0C38 01 00000000:00000000 00:00000000 00000000 10001        0 4243 1 0000000000000000 20 4 30 10 -1
   2: 020012AC:B1E0 010200C0:0050 02 00000001:00000000 01:00000107 00000002 10001        0 4244 2 0000000000000000 200 0 0 1 7
   3: 020012AC:B1E2 020012AC:0C38 02 00000001:00000000 01:00000107 00000000 10001        0 4245 2 0000000000000000 200 0 0 1 7
   4: 0100007F:B1E4 0100007F:2328 02 00000001:00000000 01:00000107 00000000 10001        0 4246 2 0000000000000000 200 0 0 1 7
   5: garbage
`

// 2001:db8::1 port 443 in SYN_SENT: four little-endian words.
const procTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 10001        0 1 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:C000 B80D0120000000000000000001000000:01BB 02 00000001:00000000 01:00000107 00000000 10001        0 2 2 0000000000000000 200 0 0 1 7
`

func TestSynSentReadsTheKernelsTables(t *testing.T) {
	got := synSent([]byte(procTCP))
	want := []netip.AddrPort{
		netip.MustParseAddrPort("192.0.2.1:80"),
		netip.MustParseAddrPort("172.18.0.2:3128"),
		netip.MustParseAddrPort("127.0.0.1:9000"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("synSent(tcp) = %v, want %v", got, want)
	}
	got6 := synSent([]byte(procTCP6))
	if want6 := []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::1]:443")}; !slices.Equal(got6, want6) {
		t.Errorf("synSent(tcp6) = %v, want %v", got6, want6)
	}
	for _, bad := range []string{"", "zz:0050", "0100007F:zz", "0100007F", "01000:0050"} {
		if ap, ok := parseProcAddr(bad); ok {
			t.Errorf("parseProcAddr(%q) = %v, want a refusal", bad, ap)
		}
	}
}

// fakeProc lays out /proc/<pid> with a cgroup naming id and the given tcp table.
func fakeProc(t *testing.T, pid, cgroup, tcp string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, pid)
	if err := os.MkdirAll(filepath.Join(dir, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"cgroup": cgroup, "net/tcp": tcp} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDirectWatcherKeepsAttemptsThatBypassTheProxy(t *testing.T) {
	const id = "2f858422edde2fc48a5b9cdeb30f19e0c5112ee33e20cfe81f199838d5c1001b"
	root := fakeProc(t, "4711", "0::/system.slice/docker-"+id+".scope\n", procTCP)
	w, err := watchDirect(root, 4711, id, "172.18.0.2")
	if err != nil {
		t.Fatal(err)
	}
	// The proxy and loopback are not direct connections; the table is read again at the end,
	// and an attempt seen twice is listed once.
	if got := w.finish(); !slices.Equal(got, []string{"192.0.2.1:80"}) {
		t.Errorf("finish() = %q, want [192.0.2.1:80]", got)
	}
	if got := w.finish(); len(got) != 1 {
		t.Errorf("a second finish() = %q", got)
	}
}

func TestDirectWatcherRefusesAProcessThatIsNotTheContainer(t *testing.T) {
	// A runner in a container sees its own processes under the engine's pid numbers: reading
	// their sockets would report the runner's own connections as the agent's.
	root := fakeProc(t, "4711", "0::/\n", procTCP)
	if _, err := watchDirect(root, 4711, "2f858422edde", "172.18.0.2"); !errors.Is(err, errDirectUnavailable) {
		t.Errorf("watchDirect on a foreign process: %v, want errDirectUnavailable", err)
	}
	if _, err := watchDirect(root, 4712, "2f858422edde", ""); !errors.Is(err, errDirectUnavailable) {
		t.Errorf("watchDirect on a missing process: %v, want errDirectUnavailable", err)
	}
}
