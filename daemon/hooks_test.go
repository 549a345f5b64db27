package daemon_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store/storetest"
	"github.com/agentrunner/agentrunner/workspace"
)

// fetchCounter counts the fetches (Head) of a real pipeline.
type fetchCounter struct {
	*daemon.GitPipeline
	fetches atomic.Int64
}

func (p *fetchCounter) Head(ctx context.Context, repo event.Repo) (string, string, error) {
	p.fetches.Add(1)
	return p.GitPipeline.Head(ctx, repo)
}

// A hook call is authenticated before the daemon does any work for it: no fetch, no mirror
// lock file, no git output in the answer, for an unsigned call, a bad signature, a malformed
// name or a repository or routine not known.
func TestHookAuthenticatesBeforeItFetches(t *testing.T) {
	repoDir, _ := gittest.Repo(t, map[string]string{".agents/hooked.yaml": `name: hooked
on:
  webhook: {secret: HOOK_KEY}
agents:
  a: {image: x, command: [x]}
`})
	repos, err := daemon.NewRepos([]daemon.Repo{{Name: "acme/app", URL: repoDir, DefaultBranch: "main"}})
	if err != nil {
		t.Fatal(err)
	}
	repos.Env = map[string]string{"HOOK_KEY": "k3y"}
	root := t.TempDir()
	wsm, err := workspace.NewManager(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wsm.Close() })
	pipe := &fetchCounter{GitPipeline: &daemon.GitPipeline{Workspaces: wsm, Sandbox: daemon.FakeSandbox{}, Repos: repos, RunsDir: t.TempDir()}}
	st := storetest.SQLite(t).Open(t)
	// Schedules on: the daemon reads the configured repository's routines at start.
	d := runDaemon(t, daemon.Options{Store: st, Pipeline: pipe, Repos: repos, Poll: 20 * time.Millisecond, ScheduleTick: 50 * time.Millisecond})
	mux := http.NewServeMux()
	(&server.API{Store: st, Dispatcher: d}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	body := []byte(`{"alert":"disk full"}`)
	signed := github.Sign([]byte("k3y"), body)
	post := func(path, sig string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		if sig != "" {
			req.Header.Set("X-Hub-Signature-256", sig)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Until the start-up read of the repository's routines, the routine is unknown (404).
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, _ := post("/hooks/acme/app/hooked", signed)
		if code == http.StatusAccepted {
			break
		}
		if code != http.StatusNotFound || time.Now().After(deadline) {
			t.Fatalf("signed call to the configured repository = %d, want 202 once its routines are read", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mirrors := func() []string {
		es, _ := os.ReadDir(filepath.Join(root, "mirrors"))
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return names
	}
	before, fetches := mirrors(), pipe.fetches.Load()

	for _, tc := range []struct {
		name, path, sig string
		code            int
	}{
		{"unsigned", "/hooks/acme/app/hooked", "", 401},
		{"signed with another key", "/hooks/acme/app/hooked", github.Sign([]byte("guess"), body), 401},
		{"a malformed signature", "/hooks/acme/app/hooked", "sha256=zz", 401},
		{"a repository not known", "/hooks/acme/unknown/hooked", signed, 404},
		{"a routine not known", "/hooks/acme/app/other", signed, 404},
		{"a repository named ..", "/hooks/acme/%2E%2E/hooked", signed, 400},
		{"an owner with a newline", "/hooks/ac%0Ame/app/hooked", signed, 400},
		{"an owner with a colon", "/hooks/acme:x/app/hooked", signed, 400},
		{"a routine with a colon", "/hooks/acme/app/hoo:ked", signed, 400},
		{"an owner of 40 characters", "/hooks/" + strings.Repeat("a", 40) + "/app/hooked", signed, 400},
		{"an owner with two hyphens in a row", "/hooks/ac--me/app/hooked", signed, 400},
	} {
		code, answer := post(tc.path, tc.sig)
		if code != tc.code {
			t.Errorf("%s: status %d (%s), want %d", tc.name, code, strings.TrimSpace(answer), tc.code)
		}
		for _, leak := range []string{"fatal", "git", root, "HOOK_KEY"} {
			if strings.Contains(answer, leak) {
				t.Errorf("%s: the answer %q shows %q", tc.name, answer, leak)
			}
		}
	}
	if n := pipe.fetches.Load() - fetches; n != 0 {
		t.Errorf("refused calls fetched %d times, want 0", n)
	}
	if after := mirrors(); len(after) != len(before) {
		t.Errorf("refused calls changed the mirrors directory from %q to %q", before, after)
	}
	// A call signed right is accepted, and only then fetches.
	if code, answer := post("/hooks/acme/app/hooked", signed); code != http.StatusAccepted {
		t.Fatalf("signed call = %d %s, want 202", code, answer)
	}
	if n := pipe.fetches.Load() - fetches; n != 1 {
		t.Errorf("an accepted call fetched %d times, want 1", n)
	}
}
