package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// A run that another daemon ran has no files in this daemon's run directory: the read API
// serves them from the store, and a job's live log in the run directory comes first.
func TestReadAPIServesRunFilesFromTheStore(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	ctx := t.Context()
	const id = "r0123"
	if _, _, err := st.CreateRun(ctx, store.Run{ID: id, Key: id, Repo: "acme/app", Routine: "audit", Status: store.RunCompleted, Conclusion: "success"}); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"result.json": `{"jobs":[{"id":"audit[api]","agent":"audit","outcome":"success"},{"id":"fix","agent":"fix","outcome":"failed"}]}`,
		"jobs/" + runner.JobDirName("audit[api]") + "/log.txt": "audit log, kept by the daemon that ran it\n",
		"jobs/fix/log.txt": "stored fix log\n",
	} {
		if err := st.SaveRunFile(ctx, id, name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	runsDir := t.TempDir()
	live := filepath.Join(runsDir, id, "jobs", "fix")
	if err := os.MkdirAll(live, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(live, "log.txt"), []byte("live fix log\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	get := readAPI(t, st, runsDir)
	for _, tc := range []struct {
		path, want string
		code       int
	}{
		{"/api/v1/runs/" + id, `"id": "audit[api]"`, 200},
		{"/api/v1/runs/" + id + "/jobs/audit[api]/log", "audit log, kept by the daemon that ran it\n", 200},
		{"/api/v1/runs/" + id + "/jobs/fix/log", "live fix log\n", 200},
		{"/api/v1/runs/" + id + "/jobs/nope/log", `no log for job \"nope\"`, 404},
		{"/api/v1/runs/r-none/jobs/fix/log", "no run r-none", 404},
	} {
		code, body, _ := get(tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s = %d %q, want %d containing %q", tc.path, code, body, tc.code, tc.want)
		}
	}
}

// The read API serves files of a run directory, where agents' output directories live too:
// it follows no symlink there, whatever put it there, and falls back to the store.
func TestReadAPIFollowsNoSymlinkInTheRunDirectory(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	ctx := t.Context()
	const id, marker = "r0456", "HOST-MARKER-api-77"
	if _, _, err := st.CreateRun(ctx, store.Run{ID: id, Key: id, Repo: "acme/app", Routine: "audit", Status: store.RunCompleted}); err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "log.txt"), []byte(marker), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(host, "result.json"), []byte(`{"jobs":[{"id":"`+marker+`"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	runsDir := t.TempDir()
	jobs := filepath.Join(runsDir, id, "jobs")
	if err := os.MkdirAll(filepath.Join(jobs, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		filepath.Join(jobs, "a", "log.txt"):       filepath.Join(host, "log.txt"), // the file
		filepath.Join(jobs, "b"):                  host,                           // a directory on the way
		filepath.Join(runsDir, id, "result.json"): filepath.Join(host, "result.json"),
	} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	get := readAPI(t, st, runsDir)
	for _, path := range []string{"/api/v1/runs/" + id + "/jobs/a/log", "/api/v1/runs/" + id + "/jobs/b/log", "/api/v1/runs/" + id} {
		if code, body, _ := get(path); strings.Contains(body, marker) {
			t.Errorf("GET %s served the symlink's target: %d %s", path, code, body)
		}
	}
}

// readAPI serves the read API on st and runsDir and returns a GET with a reader's token and
// the request header's name-value pairs hdr.
func readAPI(t *testing.T, st store.Store, runsDir string) func(path string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	tok, err := st.CreateToken(t.Context(), store.Token{Name: "reader", Scope: store.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	(&server.API{Store: st, RunsDir: runsDir}).Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return func(path string, hdr ...string) (int, string, http.Header) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, hs.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
}

// A job's log answers Range requests, so `runner logs -f` asks only for what it has not
// printed, and says the run's status, so it knows when the log is whole.
func TestJobLogAnswersRanges(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	const id = "r-range"
	if _, _, err := st.CreateRun(t.Context(), store.Run{ID: id, Key: id, Repo: "acme/app", Routine: "audit", Status: store.RunRunning}); err != nil {
		t.Fatal(err)
	}
	runsDir := t.TempDir()
	dir := filepath.Join(runsDir, id, "jobs", "a")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "log.txt"), []byte("line one\nline two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	get := readAPI(t, st, runsDir)
	for _, tc := range []struct {
		rng, body, contentRange string
		code                    int
	}{
		{"", "line one\nline two\n", "", 200},
		{"bytes=9-", "line two\n", "bytes 9-17/18", 206},
		{"bytes=18-", "", "bytes */18", 416},
	} {
		var hdr []string
		if tc.rng != "" {
			hdr = []string{"Range", tc.rng}
		}
		code, body, h := get("/api/v1/runs/"+id+"/jobs/a/log", hdr...)
		if code != tc.code || (tc.code != 416 && body != tc.body) || h.Get("Content-Range") != tc.contentRange || h.Get("X-Run-Status") != store.RunRunning {
			t.Errorf("Range %q: %d %q, Content-Range %q, X-Run-Status %q; want %d %q %q running", tc.rng, code, body,
				h.Get("Content-Range"), h.Get("X-Run-Status"), tc.code, tc.body, tc.contentRange)
		}
	}
}
