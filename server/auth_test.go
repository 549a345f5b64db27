package server_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// countingDispatcher starts nothing; it counts the dispatches that got past authentication.
type countingDispatcher struct{ n atomic.Int32 }

func (d *countingDispatcher) Dispatch(_ context.Context, repo, routine string, _ map[string]string) (*daemon.DispatchResult, error) {
	d.n.Add(1)
	return &daemon.DispatchResult{RunID: "r-new", Repo: repo, Routine: routine}, nil
}

func (d *countingDispatcher) Cancel(_ context.Context, runID, _ string) (*daemon.CancelResult, error) {
	d.n.Add(1)
	return &daemon.CancelResult{RunID: runID, Status: "completed", Conclusion: "cancelled"}, nil
}

func (d *countingDispatcher) Rerun(_ context.Context, runID string) (*daemon.RerunResult, error) {
	d.n.Add(1)
	return &daemon.RerunResult{RunID: "r-again", RerunOf: runID, Status: "queued"}, nil
}

func (d *countingDispatcher) CancelJob(_ context.Context, runID, job, _ string) (*daemon.CancelJobResult, error) {
	d.n.Add(1)
	return &daemon.CancelJobResult{RunID: runID, Job: job, State: "running"}, nil
}

func (d *countingDispatcher) Hook(context.Context, string, string, []byte, string, string) (*daemon.DispatchResult, error) {
	panic("not called by these tests")
}

// authAPI serves the API on a fresh store with one completed run r1 (with a job log) and a
// token of each scope; it returns the clock, the tokens by scope and a request function.
func authAPI(t *testing.T) (*storetest.Clock, store.Store, *countingDispatcher, func(method, path, token string) (int, http.Header, string)) {
	t.Helper()
	clock := storetest.NewClock()
	st := storetest.SQLite(t).Open(t, store.WithClock(clock.Now))
	ctx := t.Context()
	if _, _, err := st.CreateRun(ctx, store.Run{ID: "r1", Key: "r1", Repo: "acme/app", Routine: "audit", Status: store.RunCompleted}); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveRunFile(ctx, "r1", "jobs/a/log.txt", []byte("log of a\n")); err != nil {
		t.Fatal(err)
	}
	d := &countingDispatcher{}
	mux := http.NewServeMux()
	(&server.API{Store: st, Dispatcher: d, RunsDir: t.TempDir()}).Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return clock, st, d, func(method, path, token string) (int, http.Header, string) {
		req, _ := http.NewRequestWithContext(t.Context(), method, hs.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
}

// Every route needs its scope: reading needs read, dispatching needs dispatch; a wider scope
// includes the narrower ones; a token lacking the scope gets 403 naming the scope and how to
// make such a token, and the handler never runs.
func TestEveryRouteNeedsItsScope(t *testing.T) {
	_, st, d, call := authAPI(t)
	tokens := map[store.Scope]string{}
	for _, sc := range store.Scopes {
		tok, err := st.CreateToken(t.Context(), store.Token{Name: "t-" + string(sc), Scope: sc})
		if err != nil {
			t.Fatal(err)
		}
		tokens[sc] = tok
	}
	routes := []struct {
		method, path string
		need         store.Scope
		ok           int
		body         string
	}{
		{"POST", "/api/v1/repos/acme/app/routines/audit/dispatch", store.ScopeDispatch, 202, `"run_id": "r-new"`},
		{"GET", "/api/v1/runs", store.ScopeRead, 200, `"id": "r1"`},
		{"GET", "/api/v1/runs/r1", store.ScopeRead, 200, `"routine": "audit"`},
		{"GET", "/api/v1/runs/r1/jobs/a/log", store.ScopeRead, 200, "log of a"},
		{"POST", "/api/v1/runs/r1/cancel", store.ScopeDispatch, 200, `"conclusion": "cancelled"`},
		{"POST", "/api/v1/runs/r1/rerun", store.ScopeDispatch, 201, `"rerun_of": "r1"`},
		{"POST", "/api/v1/runs/r1/jobs/a/cancel", store.ScopeDispatch, 202, `"job": "a"`},
	}
	dispatches := int32(0)
	for _, rt := range routes {
		for _, have := range store.Scopes {
			code, hdr, body := call(rt.method, rt.path, tokens[have])
			name := rt.method + " " + rt.path + " with a " + string(have) + " token"
			if have.Allows(rt.need) {
				if code != rt.ok || !strings.Contains(body, rt.body) {
					t.Errorf("%s: %d %s, want %d with %q", name, code, body, rt.ok, rt.body)
				}
				if rt.need == store.ScopeDispatch {
					dispatches++
				}
				continue
			}
			for _, want := range []string{`scope \"` + string(have) + `\"`, "needs scope " + string(rt.need), "runner token create NAME --scope " + string(rt.need)} {
				if code != http.StatusForbidden || !strings.Contains(body, want) {
					t.Errorf("%s: %d %s, want 403 containing %q", name, code, body, want)
				}
			}
			if h := hdr.Get("WWW-Authenticate"); !strings.Contains(h, `error="insufficient_scope"`) || !strings.Contains(h, `scope="`+string(rt.need)+`"`) {
				t.Errorf("%s: WWW-Authenticate %q, want insufficient_scope for %s", name, h, rt.need)
			}
		}
	}
	if got := d.n.Load(); got != dispatches {
		t.Errorf("%d dispatches, cancels and reruns reached the dispatcher, want %d (only with dispatch and admin tokens)", got, dispatches)
	}
}

// An expired token is refused with a 401 that says it expired (not that it is invalid), on
// every route; before its expiry it works.
func TestExpiredTokenIsRefusedAsExpired(t *testing.T) {
	clock, st, _, call := authAPI(t)
	tok, err := st.CreateToken(t.Context(), store.Token{Name: "nightly", Scope: store.ScopeAdmin, ExpiresAt: clock.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if code, _, body := call("GET", "/api/v1/runs", tok); code != 200 {
		t.Fatalf("before expiry: %d %s", code, body)
	}
	clock.Advance(24 * time.Hour)
	for _, r := range [][2]string{{"GET", "/api/v1/runs"}, {"GET", "/api/v1/runs/r1/jobs/a/log"}, {"POST", "/api/v1/repos/acme/app/routines/audit/dispatch"}} {
		code, hdr, body := call(r[0], r[1], tok)
		if code != http.StatusUnauthorized || !strings.Contains(body, `token \"nightly\" expired at 2025-06-02T12:00:00Z`) ||
			!strings.Contains(body, "runner token create nightly") || strings.Contains(body, "invalid") {
			t.Errorf("%s %s after expiry: %d %s, want 401 saying it expired and how to replace it", r[0], r[1], code, body)
		}
		if h := hdr.Get("WWW-Authenticate"); !strings.Contains(h, `error_description="expired"`) {
			t.Errorf("WWW-Authenticate %q, want it to say expired", h)
		}
	}
}

func TestMissingOrUnknownTokenIs401(t *testing.T) {
	_, st, _, call := authAPI(t)
	tok, err := st.CreateToken(t.Context(), store.Token{Name: "gone", Scope: store.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeToken(t.Context(), "gone"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, token, want string }{
		{"no token", "", "missing bearer token (create one with `runner token create NAME --scope read`)"},
		{"a revoked token", tok, "invalid token (unknown or revoked)"},
		{"not a token", "hunter2", "invalid token"},
	} {
		if code, _, body := call("GET", "/api/v1/runs", tc.token); code != http.StatusUnauthorized || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want 401 %q", tc.name, code, body, tc.want)
		}
	}
}
