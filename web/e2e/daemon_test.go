package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/internal/gittest"
)

// Repo is the one repository the test daemon serves.
const Repo = "acme/app"

// daemon is `runner serve` as a child process, on a local git repository, with the Docker
// sandbox: what an operator runs, nothing faked.
type daemon struct {
	t      *testing.T
	URL    string // http://127.0.0.1:port
	bin    string
	config string
	logf   *os.File
	cmd    *exec.Cmd
	done   chan struct{}
	docker *client.Client

	// repo is the repository's path, which another daemon of the fleet serves too.
	repo string

	mu   sync.Mutex
	runs map[string]bool // every run dispatched: none may leave a Docker object behind
}

// setup is how a test daemon starts.
type setup struct {
	files map[string]string // committed to a new repository acme/app, unless repo is set
	repo  string            // the repository of another daemon of the fleet
	// database is a Postgres DSN the daemon shares with others; "" is SQLite in its data dir.
	database string
}

// startDaemon builds the runner, commits files (routines under .agents/) to a new repository
// acme/app, and serves it. At the end of the test it stops the daemon (SIGTERM) and fails the
// test if any run left a container, volume or network behind.
func startDaemon(t *testing.T, files map[string]string) *daemon {
	t.Helper()
	return startFleetDaemon(t, setup{files: files})
}

// startFleetDaemon starts a daemon as s says.
func startFleetDaemon(t *testing.T, s setup) *daemon {
	t.Helper()
	cli := dockertest.Client(t)
	dockertest.TestAgentImage(t)
	bin := dockertest.BuildRunner(t) // static: it is also the agents' supervisor in their containers
	repo := s.repo
	if repo == "" {
		repo, _ = gittest.Repo(t, s.files)
	}
	dir := t.TempDir()
	addr := freePort(t)
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	cfg := filepath.Join(dir, "runner.yaml")
	yaml := fmt.Sprintf(`listen: %s
public-url: http://%s
data-dir: %s
id: browser-e2e-%s
schedules: false
reporters: log
shutdown-grace: 5s
repos:
  - name: %s
    url: %s
    default-branch: main
`, addr, addr, filepath.Join(dir, "data"), hex.EncodeToString(id), Repo, repo)
	if s.database != "" {
		yaml += fmt.Sprintf("database: %q\n", s.database)
	}
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, URL: "http://" + addr, bin: bin, config: cfg, logf: logf, docker: cli, repo: repo, runs: map[string]bool{}}
	t.Cleanup(d.stop)
	d.cmd = exec.Command(bin, "serve", "--config", cfg)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.Env = append(os.Environ(), "AGENTRUNNER_CONFIG=")
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start runner serve: %v", err)
	}
	d.done = make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(d.URL + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case <-d.done:
			t.Fatalf("runner serve exited at start:\n%s", d.logTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("runner serve did not answer /healthz in 30s:\n%s", d.logTail())
		}
	}
}

func (d *daemon) stop() {
	t := d.t
	if d.cmd != nil && d.cmd.Process != nil {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
			t.Errorf("runner serve did not stop within 30s of SIGTERM")
		}
	}
	if t.Failed() {
		t.Logf("runner serve log (tail):\n%s", d.logTail())
	}
	d.logf.Close()
	d.mu.Lock()
	defer d.mu.Unlock()
	for id := range d.runs {
		dockertest.AssertNoLeftovers(t, d.docker, id)
	}
}

func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.logf.Name())
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	return string(b)
}

// token creates an API token with scope through `runner token create`, as an operator does.
func (d *daemon) token(name, scope string) string {
	d.t.Helper()
	cmd := exec.Command(d.bin, "token", "create", name, "--scope", scope, "--config", d.config)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		d.t.Fatalf("runner token create: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// dispatch starts routine on the repository through the API, as `runner dispatch` does, and
// returns the new run's id.
func (d *daemon) dispatch(token, routine string) string {
	d.t.Helper()
	var res struct {
		RunID string `json:"run_id"`
	}
	d.api(token, http.MethodPost, "/api/v1/repos/"+Repo+"/routines/"+routine+"/dispatch", http.StatusAccepted, &res)
	if res.RunID == "" {
		d.t.Fatal("dispatch answered no run id")
	}
	d.track(res.RunID)
	return res.RunID
}

// track adds a run the test started some other way (a form, a re-run under a new id) to those
// that must leave no Docker object behind.
func (d *daemon) track(runID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.runs[runID] = true
}

// run is the API's view of a run.
type run struct {
	ID         string    `json:"id"`
	SHA        string    `json:"sha"`
	Status     string    `json:"status"`
	Conclusion string    `json:"conclusion"`
	FinishedAt time.Time `json:"finished_at"`
}

// run reads a run through the API; a dispatched run the daemon has not created yet (its
// intake is asynchronous) has no status.
func (d *daemon) run(token, id string) run {
	d.t.Helper()
	var r run
	if d.api(token, http.MethodGet, "/api/v1/runs/"+id, http.StatusOK, &r) == http.StatusNotFound {
		return run{ID: id}
	}
	return r
}

// waitRun waits until the run's status is status, failing the test after within.
func (d *daemon) waitRun(token, id, status string, within time.Duration) run {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := d.run(token, id)
		if r.Status == status {
			return r
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("run %s is %s after %v, want %s", id, r.Status, within, status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cancel cancels a run through the API.
func (d *daemon) cancel(token, id string) {
	d.t.Helper()
	d.api(token, http.MethodPost, "/api/v1/runs/"+id+"/cancel", 0, nil)
}

// api calls the daemon's API and decodes its answer into out. It fails the test on an error
// status other than 404, which it returns (with want 0, any success is accepted).
func (d *daemon) api(token, method, path string, want int, out any) int {
	d.t.Helper()
	req, err := http.NewRequest(method, d.URL+path, strings.NewReader("{}"))
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound && method == http.MethodGet {
		return resp.StatusCode
	}
	if (want != 0 && resp.StatusCode != want) || resp.StatusCode >= 400 {
		d.t.Fatalf("%s %s: HTTP %d %s", method, path, resp.StatusCode, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			d.t.Fatalf("%s %s: %v in %s", method, path, err, body)
		}
	}
	return resp.StatusCode
}

// containers returns the run's containers (running or not) and their states.
func (d *daemon) containers(runID string) []string {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := d.docker.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", dockertest.LabelRun+"="+runID))})
	if err != nil {
		d.t.Fatalf("list the containers of run %s: %v", runID, err)
	}
	var states []string
	for _, c := range cs {
		states = append(states, c.State)
	}
	return states
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
