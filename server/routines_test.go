package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/overview"
	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// oneRepo serves one repository's routines, loaded from a real .agents directory.
type oneRepo struct{ cfg *config.Config }

func (o oneRepo) RepoNames() []string { return []string{"acme/app"} }

func (o oneRepo) DefaultConfig(context.Context, string) (*config.Config, string, string, error) {
	return o.cfg, "0123abcd", "main", nil
}

// GET /api/v1/repos and /api/v1/repos/{owner}/{repo}/routines need scope read and answer the
// overview's read model; a read token cannot dispatch.
func TestRoutinesAPI(t *testing.T) {
	cfg, err := config.LoadFS(fstest.MapFS{".agents/ask.yaml": {Data: []byte(`on:
  schedule: [{cron: "@hourly"}]
  dispatch:
    inputs:
      area: {required: true, options: [api, web]}
      prompt: {description: What to do}
agents:
  a: {image: x, command: [x]}
`)}}, ".agents")
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.SQLite(t).Open(t)
	ctx := t.Context()
	if _, _, err := st.CreateRun(ctx, store.Run{ID: "r1", Repo: "acme/app", Routine: "ask", EventKind: "dispatch"}); err != nil {
		t.Fatal(err)
	}
	tokens := map[store.Scope]string{}
	for _, sc := range []store.Scope{store.ScopeRead, store.ScopeDispatch} {
		if tokens[sc], err = st.CreateToken(ctx, store.Token{Name: "t-" + string(sc), Scope: sc}); err != nil {
			t.Fatal(err)
		}
	}
	d := &countingDispatcher{}
	mux := http.NewServeMux()
	(&server.API{Store: st, Dispatcher: d, Routines: oneRepo{cfg}}).Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	call := func(method, path, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, hs.URL+path, strings.NewReader(`{"inputs":{"area":"api"}}`))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	code, body := call("GET", "/api/v1/repos", tokens[store.ScopeRead])
	var repos server.ReposView
	if code != http.StatusOK || json.Unmarshal([]byte(body), &repos) != nil || len(repos.Repos) != 1 ||
		repos.Repos[0] != (server.RepoView{Name: "acme/app", RoutinesURL: "/api/v1/repos/acme/app/routines"}) {
		t.Errorf("GET /api/v1/repos: %d %s", code, body)
	}
	before := time.Now().UTC()
	code, body = call("GET", "/api/v1/repos/acme/app/routines", tokens[store.ScopeRead])
	var rr overview.RepoRoutines
	if code != http.StatusOK || json.Unmarshal([]byte(body), &rr) != nil {
		t.Fatalf("GET routines: %d %s", code, body)
	}
	ask := rr.Routine("ask")
	if rr.Branch != "main" || ask == nil || !ask.Dispatchable || !ask.TakesPrompt || len(ask.Inputs) != 1 ||
		ask.Inputs[0].Name != "area" || len(ask.RecentRuns) != 1 || ask.RecentRuns[0].ID != "r1" || len(ask.NextTicks) != 3 {
		t.Fatalf("GET routines: %s", body)
	}
	if next := before.Truncate(time.Hour).Add(time.Hour); !ask.NextTicks[0].Equal(next) || ask.NextTicks[0].Location() != time.UTC {
		t.Errorf("next tick %v, want %v in UTC", ask.NextTicks[0], next)
	}
	for _, want := range []string{`"takes_prompt": true`, `"next_ticks": [`, `"recent_runs": [`, `"options": [`} {
		if !strings.Contains(body, want) {
			t.Errorf("routines JSON lacks %s:\n%s", want, body)
		}
	}
	if code, body := call("GET", "/api/v1/repos/acme/nope/routines", tokens[store.ScopeRead]); code != http.StatusNotFound || !strings.Contains(body, "GET /api/v1/repos lists") {
		t.Errorf("routines of a repository not served: %d %s", code, body)
	}
	for _, path := range []string{"/api/v1/repos", "/api/v1/repos/acme/app/routines"} {
		if code, _ := call("GET", path, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", path, code)
		}
		if code, _ := call("GET", path, tokens[store.ScopeDispatch]); code != http.StatusOK {
			t.Errorf("GET %s with a dispatch token: %d, want 200", path, code)
		}
	}
	if code, body := call("POST", "/api/v1/repos/acme/app/routines/ask/dispatch", tokens[store.ScopeRead]); code != http.StatusForbidden || d.n.Load() != 0 {
		t.Errorf("dispatch with a read token: %d %s, %d dispatches; want 403 and none", code, body, d.n.Load())
	}
	if code, _ := call("POST", "/api/v1/repos/acme/app/routines/ask/dispatch", tokens[store.ScopeDispatch]); code != http.StatusAccepted || d.n.Load() != 1 {
		t.Errorf("dispatch with a dispatch token: %d, %d dispatches", code, d.n.Load())
	}
}
