package web

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/store"
)

type fakeController struct {
	mu        sync.Mutex
	cancelled []string
	// jobs holds the jobs CancelJob was asked to cancel, as "run/job", and rerun the runs
	// Rerun was asked to re-run.
	jobs, rerun []string
}

func (f *fakeController) Cancel(_ context.Context, id, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, id)
	return nil
}

func (f *fakeController) Rerun(_ context.Context, id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rerun = append(f.rerun, id)
	return "rnew", nil
}

func (f *fakeController) CancelJob(_ context.Context, id, job, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs = append(f.jobs, id+"/"+job)
	return nil
}

func setup(t *testing.T) (*httptest.Server, store.Store, *fakeController) {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "runner.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctl := &fakeController{}
	mux := http.NewServeMux()
	(&UI{Store: st, Controller: ctl}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, st, ctl
}

// signIn returns a client holding a session of a new token with scope, and its CSRF token.
func signIn(t *testing.T, srv *httptest.Server, st store.Store, name string, scope store.Scope) (*http.Client, string) {
	t.Helper()
	plain, err := st.CreateToken(t.Context(), store.Token{Name: name, Scope: scope})
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.PostForm(srv.URL+"/ui/login", url.Values{"token": {plain}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/runs" {
		t.Fatalf("login: %s to %q, want 303 to /ui/runs", res.Status, res.Header.Get("Location"))
	}
	var ck *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == CookieName {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict", ck)
	}
	se, err := st.CheckSession(t.Context(), ck.Value)
	if err != nil || se.Who != name || se.Scope != scope {
		t.Fatalf("session = %+v, %v", se, err)
	}
	return c, session{id: ck.Value}.csrfToken()
}

func TestNoSessionRedirectsPagesAndRefusesJSON(t *testing.T) {
	srv, _, _ := setup(t)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Get(srv.URL + "/ui/runs?repo=o/r")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/login?next=") {
		t.Errorf("runs page without a session: %s to %q, want 303 to the login form", res.Status, loc)
	}
	res, err = c.Get(srv.URL + "/ui/runs.json")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("runs JSON without a session: %s, want 401", res.Status)
	}
	res, err = c.PostForm(srv.URL+"/ui/login", url.Values{"token": {"art_nope"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("login with an unknown token: %s, want 401", res.Status)
	}
}

func TestReadSessionCannotCancel(t *testing.T) {
	srv, st, ctl := setup(t)
	c, csrf := signIn(t, srv, st, "viewer", store.ScopeRead)
	res, err := c.Get(srv.URL + "/ui/runs")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("runs page: %s, CSP %q", res.Status, res.Header.Get("Content-Security-Policy"))
	}
	res, err = c.PostForm(srv.URL+"/ui/runs/r1/cancel", url.Values{"csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden || len(ctl.cancelled) != 0 {
		t.Fatalf("a read session's cancel: %s, cancelled %v; want 403 and nothing cancelled", res.Status, ctl.cancelled)
	}
	d, csrf := signIn(t, srv, st, "operator", store.ScopeDispatch)
	res, err = d.PostForm(srv.URL+"/ui/runs/r1/cancel", url.Values{"csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || len(ctl.cancelled) != 1 {
		t.Fatalf("a dispatch session's cancel: %s, cancelled %v; want 303 and r1 cancelled", res.Status, ctl.cancelled)
	}
}

func TestCrossSitePostRefused(t *testing.T) {
	srv, st, ctl := setup(t)
	c, csrf := signIn(t, srv, st, "ops", store.ScopeAdmin)
	post := func(csrfValue string, hdr map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/ui/runs/r1/cancel", strings.NewReader(url.Values{"csrf": {csrfValue}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	tests := []struct {
		name string
		csrf string
		hdr  map[string]string
	}{
		{"no CSRF token", "", nil},
		{"a wrong CSRF token", "x" + csrf, nil},
		{"another origin, with the token", csrf, map[string]string{"Origin": "https://evil.example"}},
		{"Sec-Fetch-Site cross-site, with the token", csrf, map[string]string{"Sec-Fetch-Site": "cross-site"}},
	}
	for _, tc := range tests {
		if got := post(tc.csrf, tc.hdr); got != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tc.name, got)
		}
	}
	if len(ctl.cancelled) != 0 {
		t.Fatalf("refused posts cancelled %v", ctl.cancelled)
	}
	if got := post(csrf, map[string]string{"Origin": srv.URL, "Sec-Fetch-Site": "same-origin"}); got != http.StatusSeeOther {
		t.Fatalf("same-origin post with the token: %d, want 303", got)
	}
}

func TestRevokedTokenEndsSession(t *testing.T) {
	srv, st, _ := setup(t)
	c, _ := signIn(t, srv, st, "temp", store.ScopeRead)
	if err := st.RevokeToken(t.Context(), "temp"); err != nil {
		t.Fatal(err)
	}
	res, err := c.Get(srv.URL + "/ui/runs.json")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after revoking its token: %s, want 401", res.Status)
	}
}

func TestAgentTextIsEscaped(t *testing.T) {
	srv, st, _ := setup(t)
	ctx := t.Context()
	run, _, err := st.CreateRun(ctx, store.Run{Repo: "o/r", Routine: `<script>alert(1)</script>`, SHA: "abc", EventKind: "dispatch", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveRunFile(ctx, run.ID, "report.md", []byte(`<script>alert(2)</script> [x](javascript:alert(3))`)); err != nil {
		t.Fatal(err)
	}
	c, _ := signIn(t, srv, st, "viewer", store.ScopeRead)
	for _, path := range []string{"/ui/runs", "/ui/runs/" + run.ID} {
		res, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		_, _ = io.Copy(&b, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || strings.Contains(b.String(), "<script>alert") || strings.Contains(b.String(), `href="javascript:`) {
			t.Errorf("%s: %s, agent text not escaped:\n%s", path, res.Status, b.String())
		}
	}
}
