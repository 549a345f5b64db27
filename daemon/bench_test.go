package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

func rssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	return -1
}

// The daemon's resident memory idle, and with 1,000 queued runs waiting for one concurrency
// group (so they stay queued while the daemon works).
func BenchmarkDaemonRSS(b *testing.B) {
	repoDir, head := gittest.Repo(b, map[string]string{".agents/wait.yaml": `name: wait
on: {dispatch: {}}
concurrency: {group: one}
env: {AGENTRUNNER_FAKE_SLEEP: 1h}
agents:
  a: {image: x, command: [x]}
`})
	db := storetest.SQLite(b)
	dir := b.TempDir()
	addr := freePortB(b)
	cfg := fmt.Sprintf("listen: %q\ndata-dir: %q\ndatabase: %q\nsandbox: fake\nreporters: none\nlog-level: warn\nshutdown-grace: 1s\nrepos:\n  - {name: acme/app, url: %q, default-branch: main}\n",
		addr, dir+"/data", db.DSN, repoDir)
	if err := os.WriteFile(dir+"/runner.yaml", []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	bin, err := buildRunner()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", dir+"/runner.yaml")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 200 {
			b.Fatal("runner serve did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	idle := rssMB(cmd.Process.Pid)
	st := db.Open(b)
	for i := range 1000 {
		body := fmt.Appendf(nil, `{"repo":"acme/app","routine":"wait","sha":%q,"branch":"main"}`, head)
		if _, err := st.RecordDelivery(context.Background(), store.Delivery{ID: "q-" + strconv.Itoa(i), Event: EventDispatch, Body: body}); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		runs, _ := st.ListRuns(context.Background(), store.RunFilter{Limit: 2000})
		if len(runs) >= 1000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	loaded := rssMB(cmd.Process.Pid)
	b.ReportMetric(idle, "idle-RSS-MB")
	b.ReportMetric(loaded, "1000-queued-RSS-MB")
}

func freePortB(b *testing.B) string {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
