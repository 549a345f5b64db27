package daemon

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/internal/githubfake"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/internal/kubetest"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// buildRunner builds ./cmd/runner once per test binary.
var buildRunner = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "agentrunner-daemon-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "runner")
	// The tests run the daemon with the fake sandbox, which only test builds offer.
	out, err := exec.Command("go", "build", "-tags=agentrunner_testonly", "-o", bin, "../cmd/runner").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/runner: %v\n%s", err, out)
	}
	return bin, nil
})

func runnerBinary(t testing.TB) string {
	t.Helper()
	bin, err := buildRunner()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestMain removes the runner binary the tests built, and stops the Kubernetes control plane
// if a test started it.
func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.Stop()
	if bin, err := buildRunner(); err == nil {
		_ = os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// daemonProc is `runner serve` as a child process.
type daemonProc struct {
	t    testing.TB
	bin  string
	cfg  string
	addr string
	log  *os.File
	cmd  *exec.Cmd
	done chan struct{}
	// retries counts starts that failed because the port was taken.
	retries int
}

func (p *daemonProc) start() {
	p.t.Helper()
	cmd := exec.Command(p.bin, "serve", "--config", p.cfg)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.Env = append(os.Environ(), "AGENTRUNNER_CONFIG=")
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start runner serve: %v", err)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.done:
			// Another process may have taken the port between freePort and now.
			if b, _ := os.ReadFile(p.log.Name()); bytes.Contains(b, []byte("address already in use")) && p.retries < 20 {
				p.retries++
				time.Sleep(250 * time.Millisecond)
				p.start()
				return
			}
			p.t.Fatalf("runner serve exited at start; see %s", p.log.Name())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("runner serve did not answer /healthz; see %s", p.log.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *daemonProc) signal(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("runner serve did not stop on %v", sig)
	}
}

// logs is the end of the daemon's log, for a failing test's message.
func (p *daemonProc) logs() string {
	b, _ := os.ReadFile(p.log.Name())
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// warnings are the first max lines of the daemon's log at WARN or ERROR.
func (p *daemonProc) warnings(max int) string {
	b, _ := os.ReadFile(p.log.Name())
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if len(out) < max && (strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR")) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func newDaemonProc(t testing.TB, config string) *daemonProc {
	dir := t.TempDir()
	addr := freePort(t)
	cfg := filepath.Join(dir, "runner.yaml")
	config = strings.ReplaceAll(config, "@LISTEN@", addr)
	config = strings.ReplaceAll(config, "@DATA@", filepath.Join(dir, "data"))
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	p := &daemonProc{t: t, bin: runnerBinary(t), cfg: cfg, addr: addr, log: log}
	t.Cleanup(func() {
		if p.cmd != nil && p.cmd.Process != nil && p.cmd.ProcessState == nil {
			p.signal(syscall.SIGKILL)
		}
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("runner serve log (tail):\n%s", b)
		}
	})
	return p
}

// postDelivery sends one signed delivery; ok when the daemon acknowledged it.
func postDelivery(addr, id string, secret, body []byte) (int, error) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/github", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("X-Hub-Signature-256", github.Sign(secret, body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

const pushRoutine = `name: onpush
on: {push: {branches: [main]}}
agents:
  a: {image: x, command: [x]}
publish: {check: true}
`

// kill -9 at random points during a stream of signed deliveries, then restart: every
// acknowledged delivery yields exactly one completed run and one check run.
func TestKillNineDuringDeliveries(t *testing.T) {
	for _, tc := range databases {
		t.Run(tc.name, func(t *testing.T) {
			const n = 200
			secret := []byte("webhook-secret")
			repoDir, sha := gittest.Repo(t, map[string]string{".agents/onpush.yaml": pushRoutine})
			fake := githubfake.New(t)
			fake.AddToken("ghs_test")
			fake.AddRepo("acme", "app", "main", 0)
			db := tc.db(t)
			proc := newDaemonProc(t, fmt.Sprintf(`listen: "@LISTEN@"
data-dir: "@DATA@"
database: %q
id: crash-test
sandbox: fake
reporters: github
schedules: false
lease-ttl: 3s
# Each kill ends an attempt of every run in progress; a run concluded as failed after its
# attempts is correct behaviour, but here every run must get through.
run-attempts: 20
shutdown-grace: 2s
log-level: info
github: {api-url: %q, token: ghs_test, webhook-secret: %q}
repos:
  - {name: acme/app, url: %q, default-branch: main}
`, db.DSN, fake.URL(), secret, repoDir))
			proc.start()

			body := githubfake.PushPayload(repoDir, sha)
			var mu sync.Mutex
			accepted := map[string]bool{}
			sent := make(chan struct{})
			go func() {
				defer close(sent)
				for i := range n {
					id := fmt.Sprintf("delivery-%03d", i)
					for {
						code, err := postDelivery(proc.addr, id, secret, body)
						if err == nil && code == http.StatusAccepted {
							mu.Lock()
							accepted[id] = true
							mu.Unlock()
							break
						}
						// Refused (the daemon is down): like GitHub's redelivery, send it again.
						time.Sleep(20 * time.Millisecond)
					}
					// A steady stream, so the kills land at every stage: intake, planning,
					// running, reporting.
					time.Sleep(25 * time.Millisecond)
				}
			}()
			kills := 0
			for done := false; !done; {
				select {
				case <-sent:
					done = true
				// Far enough apart that a job is rarely killed on each of its three attempts
				// (which would rightly conclude it as failed).
				case <-time.After(time.Duration(1200+rand.IntN(800)) * time.Millisecond):
					proc.signal(syscall.SIGKILL)
					kills++
					proc.start()
				}
			}
			// One more kill while the last runs may be running.
			proc.signal(syscall.SIGKILL)
			kills++
			proc.start()
			if kills < 3 {
				t.Logf("only %d kills happened during the stream", kills)
			}

			st := db.Open(t)
			t.Cleanup(func() {
				if !t.Failed() {
					return
				}
				counts, _ := st.CountJobs(context.Background())
				t.Logf("jobs by state: %v", counts)
				for _, state := range []string{store.JobDead, store.JobAvailable, store.JobLeased} {
					jobs, _ := st.ListJobs(context.Background(), store.JobFilter{State: state, Limit: 3})
					for _, j := range jobs {
						t.Logf("%s job %d (%s, attempts %d): %s", state, j.ID, j.Kind, j.Attempts, j.LastError)
					}
				}
			})
			waitFor(t, fmt.Sprintf("%d completed runs", n), 180*time.Second, func() bool {
				runs, err := st.ListRuns(context.Background(), store.RunFilter{Status: store.RunCompleted, Limit: 100000})
				return err == nil && len(runs) >= n
			})
			proc.signal(syscall.SIGTERM)

			runs, err := st.ListRuns(context.Background(), store.RunFilter{Limit: 100000})
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) != n {
				t.Errorf("%d runs, want %d (one per delivery)", len(runs), n)
			}
			byID := map[string]store.Run{}
			for _, r := range runs {
				byID[r.ID] = r
			}
			if len(accepted) != n {
				t.Errorf("%d deliveries acknowledged, want %d", len(accepted), n)
			}
			for id := range accepted {
				r, ok := byID[RunID(id, "onpush")]
				if !ok {
					t.Errorf("delivery %s was acknowledged but has no run", id)
					continue
				}
				if r.Status != store.RunCompleted || r.Conclusion != "success" {
					res, _ := os.ReadFile(filepath.Join(filepath.Dir(proc.cfg), "data", "runs", r.ID, "result.json"))
					t.Errorf("run of %s: %s/%s %s\n%s", id, r.Status, r.Conclusion, r.Error, res)
				}
			}
			checks := map[string]int{}
			for _, c := range fake.CheckRuns() {
				checks[c.ExternalID]++
				if c.Status != "completed" || c.Conclusion != "success" {
					t.Errorf("check run %s (%s): %s/%s", c.Name, c.ExternalID, c.Status, c.Conclusion)
				}
			}
			for id := range accepted {
				if c := checks[RunID(id, "onpush")]; c != 1 {
					t.Errorf("delivery %s has %d check runs, want 1", id, c)
				}
			}
			if len(checks) != n {
				t.Errorf("%d distinct check runs, want %d", len(checks), n)
			}
			if v := fake.Violations(); len(v) > 0 {
				t.Errorf("GitHub API violations: %v", v[:min(5, len(v))])
			}
			t.Logf("%d kills, %d deliveries, %d runs, %d check runs", kills, len(accepted), len(runs), len(fake.CheckRuns()))
		})
	}
}

var _ = storetest.SQLite
