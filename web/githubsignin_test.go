package web

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/internal/githubfake"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/web/githublogin"
)

// ghSite is the UI with GitHub sign-in, against the GitHub fake: the App is installed on
// acme/app and acme/secret (installation 7), not on other/thing.
type ghSite struct {
	srv  *httptest.Server
	st   store.Store
	ctl  *fakeController
	fake *githubfake.Fake
	ui   *UI
	mux  *http.ServeMux
}

func setupGitHub(t *testing.T) *ghSite {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "runner.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fake := githubfake.New(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	fake.AddApp(42, &key.PublicKey)
	fake.AddRepo("acme", "app", "main", 7)
	fake.AddRepo("acme", "secret", "main", 7)
	gc, err := github.NewClient(t.Context(), github.Config{BaseURL: fake.EnterpriseURL(), AppID: 42,
		PrivateKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	callback := srv.URL + "/ui/login/github/callback"
	fake.AddOAuthApp("Iv1.client", "client-secret", callback)
	flow, err := githublogin.New(githublogin.Config{ClientID: "Iv1.client", ClientSecret: "client-secret",
		WebURL: fake.WebURL(), APIURL: fake.EnterpriseURL(), CallbackURL: callback, Key: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	ctl := &fakeController{}
	ui := &UI{Store: st, Controller: ctl, GitHub: &GitHubSignIn{Flow: flow,
		Roles: &githublogin.Roles{Lookup: githublogin.InstallationLookup(gc)}}}
	ui.Register(mux)
	return &ghSite{srv: srv, st: st, ctl: ctl, fake: fake, ui: ui, mux: mux}
}

// newBrowser is a client with a cookie jar; it follows redirects as a browser does.
func newBrowser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// signInGitHub goes through the whole web flow as login: the login page's link, GitHub's
// authorize page, the callback, the page that moves on to next.
func (s *ghSite) signInGitHub(t *testing.T, login, next string) (*http.Client, string) {
	t.Helper()
	c := newBrowser(t)
	code, page := get(t, c, s.srv.URL+"/ui/login?next="+url.QueryEscape(next))
	link := `href="/ui/login/github?next=` + strings.ReplaceAll(url.QueryEscape(next), "%2F", "%2f") + `"`
	if code != http.StatusOK || !strings.Contains(page, "Sign in with GitHub") || !strings.Contains(page, link) {
		t.Fatalf("login page: %d, want a GitHub link %s:\n%s", code, link, page)
	}
	s.fake.SignIn(login)
	code, page = get(t, c, s.srv.URL+"/ui/login/github?next="+url.QueryEscape(next))
	if code != http.StatusOK || !strings.Contains(page, "Signed in with GitHub as <strong>"+login+"</strong>") {
		t.Fatalf("sign-in as %s: %d\n%s", login, code, page)
	}
	if want := `<meta http-equiv="refresh" content="0; url=` + strings.ReplaceAll(next, "&", "&amp;") + `">`; !strings.Contains(page, want) {
		t.Errorf("signed-in page does not move on to %s (%s):\n%s", next, want, page)
	}
	u, _ := url.Parse(s.srv.URL + "/ui/")
	var id string
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == CookieName {
			id = ck.Value
		}
	}
	se, err := s.st.CheckSession(t.Context(), id)
	if err != nil || se.Who != login || se.GitHubLogin != login || se.TokenName != "" {
		t.Fatalf("session after GitHub sign-in = %+v, %v", se, err)
	}
	return c, session{id: id}.csrfToken()
}

func (s *ghSite) post(t *testing.T, c *http.Client, path, csrf string) (int, string) {
	t.Helper()
	nc := *c
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := nc.PostForm(s.srv.URL+path, url.Values{"csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func (s *ghSite) addRun(t *testing.T, id, repo string, at time.Time) {
	t.Helper()
	if _, _, err := s.st.CreateRun(t.Context(), store.Run{ID: id, Repo: repo, Routine: "nightly", SHA: "0123456789abcdef",
		EventKind: "push", CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
}

// A reader of acme/app sees that repository's runs and nothing of acme/secret's or
// other/thing's (on which the App is not installed): in the list, its JSON twin, its pages
// (newer runs of hidden repositories do not shorten a page), the run pages, the live log and
// the review. It cannot cancel or re-run; a writer can.
func TestGitHubSessionsSeeAndSteerByRepositoryRole(t *testing.T) {
	s := setupGitHub(t)
	s.fake.SetPermission("acme", "app", "reader", "read")
	s.fake.SetPermission("acme", "app", "writer", "write")
	s.fake.SetPermission("acme", "secret", "writer", "write")
	base := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	// 120 runs alternate between app and secret, then 300 newer ones of secret and other/thing
	// sit on top: a reader's first page must read past them.
	for i := range 120 {
		repo := "acme/app"
		if i%2 == 1 {
			repo = "acme/secret"
		}
		s.addRun(t, fmt.Sprintf("run-%03d", i), repo, base.Add(time.Duration(i)*time.Second))
	}
	for i := range 300 {
		repo := "acme/secret"
		if i%3 == 0 {
			repo = "other/thing"
		}
		s.addRun(t, fmt.Sprintf("top-%03d", i), repo, base.Add(time.Hour+time.Duration(i)*time.Second))
	}
	now := time.Now().UTC()
	for _, r := range []struct{ id, repo string }{{"night-app", "acme/app"}, {"night-secret", "acme/secret"}} {
		s.addRun(t, r.id, r.repo, now.Add(-2*time.Hour))
		if err := s.st.UpdateRun(t.Context(), store.Run{ID: r.id, Status: store.RunCompleted, Conclusion: "success",
			StartedAt: now.Add(-2 * time.Hour), FinishedAt: now.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}

	reader, csrf := s.signInGitHub(t, "reader", "/ui/runs")
	seen := map[string]bool{}
	next := "/ui/runs"
	for page := 0; next != ""; page++ {
		code, body := get(t, reader, s.srv.URL+next)
		if code != http.StatusOK {
			t.Fatalf("page %d: %d %s", page, code, body)
		}
		if page == 0 && !strings.Contains(body, "reader (GitHub)") {
			t.Errorf("the header does not name the GitHub account:\n%s", body)
		}
		ids := rowRe.FindAllStringSubmatch(body, -1)
		if want := []int{pageSize, 11}[min(page, 1)]; len(ids) != want {
			t.Errorf("page %d lists %d runs, want %d", page, len(ids), want)
		}
		for _, m := range ids {
			if !strings.HasPrefix(m[1], "run-") && m[1] != "night-app" || seen[m[1]] {
				t.Errorf("page %d lists %s (seen before: %v)", page, m[1], seen[m[1]])
			}
			seen[m[1]] = true
		}
		next = ""
		if m := olderRe.FindStringSubmatch(body); m != nil {
			next = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	for i := 0; i < 120; i += 2 {
		if id := fmt.Sprintf("run-%03d", i); !seen[id] {
			t.Errorf("the reader never saw %s of acme/app", id)
		}
	}
	for k := range seen {
		var n int
		if _, err := fmt.Sscanf(k, "run-%03d", &n); err == nil && n%2 == 1 {
			t.Errorf("the reader saw %s of acme/secret", k)
		}
	}

	code, body := get(t, reader, s.srv.URL+"/ui/runs.json")
	var rowsJSON []runRow
	if err := json.Unmarshal([]byte(body), &rowsJSON); code != http.StatusOK || err != nil || len(rowsJSON) != pageSize {
		t.Fatalf("runs.json: %d, %d rows, %v", code, len(rowsJSON), err)
	}
	for _, r := range rowsJSON {
		if r.Repo != "acme/app" {
			t.Errorf("runs.json lists %s of %s", r.ID, r.Repo)
		}
	}
	if code, body = get(t, reader, s.srv.URL+"/ui/runs.json?repo=acme/secret"); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Errorf("runs.json?repo=acme/secret: %d %s, want an empty list", code, body)
	}

	for _, id := range []string{"run-001", "top-000", "no-such-run"} {
		if code, body = get(t, reader, s.srv.URL+"/ui/runs/"+id); code != http.StatusNotFound || !strings.Contains(body, "no such run") {
			t.Errorf("reader's run page of %s: %d %q, want 404 no such run", id, code, body)
		}
	}
	if code, body = get(t, reader, s.srv.URL+"/ui/runs/run-001/jobs/fix/log"); code != http.StatusNotFound {
		t.Errorf("reader's live log of a secret run: %d %q, want 404", code, body)
	}
	code, body = get(t, reader, s.srv.URL+"/ui/runs/run-000")
	if code != http.StatusOK || strings.Contains(body, "Cancel run") {
		t.Errorf("reader's run page of acme/app: %d, want 200 without a cancel button:\n%s", code, body)
	}
	for _, action := range []string{"cancel", "rerun"} {
		code, body = s.post(t, reader, "/ui/runs/run-000/"+action, csrf)
		if code != http.StatusForbidden || !strings.Contains(body, "reader cannot write to acme/app on GitHub") {
			t.Errorf("reader's %s: %d %q, want 403 naming the missing write access", action, code, body)
		}
	}
	if code, _ = s.post(t, reader, "/ui/runs/run-001/cancel", csrf); code != http.StatusNotFound {
		t.Errorf("reader's cancel of a secret run: %d, want 404", code)
	}
	if len(s.ctl.cancelled) != 0 {
		t.Fatalf("the reader cancelled %v", s.ctl.cancelled)
	}

	code, body = get(t, reader, s.srv.URL+"/ui/review")
	if code != http.StatusOK || !strings.Contains(body, "/ui/runs/night-app") || strings.Contains(body, "night-secret") ||
		!strings.Contains(body, "1 run finished since") {
		t.Errorf("reader's review: %d, want night-app alone:\n%s", code, body)
	}

	// Roles are cached: all of the above asked GitHub once per repository.
	if n := len(s.fake.RequestsTo("repos/get-collaborator-permission-level")); n != 2 {
		t.Errorf("the reader's pages asked GitHub for roles %d times, want 2 (acme/app, acme/secret)", n)
	}

	writer, csrf := s.signInGitHub(t, "writer", "/ui/runs/run-000")
	if code, body = get(t, writer, s.srv.URL+"/ui/runs/run-000"); code != http.StatusOK || !strings.Contains(body, "Cancel run") {
		t.Errorf("writer's run page: %d, want a cancel button:\n%s", code, body)
	}
	if code, body = s.post(t, writer, "/ui/runs/run-000/cancel", csrf); code != http.StatusSeeOther {
		t.Errorf("writer's cancel: %d %q, want 303", code, body)
	}
	if code, _ = s.post(t, writer, "/ui/runs/top-000/cancel", csrf); code != http.StatusNotFound {
		t.Errorf("writer's cancel on other/thing, where the App is not installed: %d, want 404", code)
	}
	if len(s.ctl.cancelled) != 1 || s.ctl.cancelled[0] != "run-000" {
		t.Errorf("cancelled %v, want [run-000]", s.ctl.cancelled)
	}
	if code, _ = s.post(t, writer, "/ui/runs/night-secret/rerun", csrf); code != http.StatusSeeOther {
		t.Errorf("writer's re-run on acme/secret: %d, want 303", code)
	}

	// Token sessions keep their scopes: a read token sees every repository's runs.
	tok, _ := signIn(t, s.srv, s.st, "viewer", store.ScopeRead)
	if code, body = get(t, tok, s.srv.URL+"/ui/runs/top-000"); code != http.StatusOK {
		t.Errorf("read token's run page of other/thing: %d %s", code, body)
	}
	if code, body = get(t, tok, s.srv.URL+"/ui/runs.json?repo=acme/secret"); code != http.StatusOK || !strings.Contains(body, "acme/secret") {
		t.Errorf("read token's runs.json of acme/secret: %d %s", code, body)
	}
}

// begin starts the web flow in browser c and stops at the callback: the address GitHub sends
// the browser back to, with its code and state.
func (s *ghSite) begin(t *testing.T, c *http.Client) *url.URL {
	t.Helper()
	nc := *c
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	loc := s.srv.URL + "/ui/login/github?next=/ui/review"
	for range 2 { // ours → GitHub's authorize page → our callback
		res, err := nc.Get(loc)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusFound {
			t.Fatalf("GET %s: %s, want 302", loc, res.Status)
		}
		loc = res.Header.Get("Location")
	}
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, s.srv.URL+"/ui/login/github/callback?") {
		t.Fatalf("GitHub sent the browser to %q", loc)
	}
	return u
}

// A callback whose state or flow cookie was tampered with, or that reaches another browser
// (login CSRF), makes no session; neither does declining on GitHub.
func TestGitHubSignInRefusesTamperedState(t *testing.T) {
	s := setupGitHub(t)
	s.fake.SignIn("mallory")
	noSession := func(name string, c *http.Client) {
		t.Helper()
		u, _ := url.Parse(s.srv.URL + "/ui/")
		for _, ck := range c.Jar.Cookies(u) {
			if ck.Name == CookieName {
				t.Errorf("%s: a session cookie was set", name)
			}
		}
		nc := *c
		nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		res, err := nc.Get(s.srv.URL + "/ui/runs")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther {
			t.Errorf("%s: /ui/runs answers %s, want 303 to the login form", name, res.Status)
		}
	}
	expect := func(name string, c *http.Client, cb *url.URL, code int, msg string) {
		t.Helper()
		got, body := get(t, c, cb.String())
		if got != code || !strings.Contains(body, msg) || !strings.Contains(body, "Sign in with GitHub") {
			t.Errorf("%s: %d, want %d with %q and the sign-in form:\n%s", name, got, code, msg, body)
		}
		noSession(name, c)
	}

	c := newBrowser(t)
	cb := s.begin(t, c)
	q := cb.Query()
	q.Set("state", q.Get("state")+"x")
	cb.RawQuery = q.Encode()
	expect("altered state", c, cb, http.StatusBadRequest, "state does not match")

	c = newBrowser(t)
	cb = s.begin(t, c)
	for _, ck := range c.Jar.Cookies(cb) {
		if ck.Name == "agentrunner_github_login" {
			value, sig, _ := strings.Cut(ck.Value, ".")
			c.Jar.SetCookies(cb, []*http.Cookie{{Name: ck.Name, Value: value + "x." + sig, Path: "/ui/login/github"}})
		}
	}
	expect("altered flow cookie", c, cb, http.StatusBadRequest, "not one this daemon made")

	cb = s.begin(t, newBrowser(t))
	expect("another browser's callback", newBrowser(t), cb, http.StatusBadRequest, "no sign-in in progress")

	s.fake.SignIn("")
	c = newBrowser(t)
	cb = s.begin(t, c)
	expect("declined on GitHub", c, cb, http.StatusForbidden, "declined")

	if v := s.fake.Violations(); len(v) != 0 {
		t.Errorf("requests GitHub would refuse: %v", v)
	}
}

// Without GitHub sign-in configured, the login page offers only the token form, the GitHub
// routes do not exist, and a session marked as GitHub's (made while it was) sees nothing.
func TestNoGitHubSignInWhenNotConfigured(t *testing.T) {
	srv, st, _ := setup(t)
	c := newBrowser(t)
	if code, page := get(t, c, srv.URL+"/ui/login"); code != http.StatusOK || strings.Contains(page, "GitHub") {
		t.Errorf("login page: %d, offers GitHub:\n%s", code, page)
	}
	if code, _ := get(t, c, srv.URL+"/ui/login/github"); code != http.StatusNotFound {
		t.Errorf("/ui/login/github: %d, want 404", code)
	}
	if _, _, err := st.CreateRun(t.Context(), store.Run{ID: "r1", Repo: "acme/app", EventKind: "push", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	id, err := st.CreateSession(t.Context(), store.Session{Who: "octocat", Scope: githubScope, GitHubLogin: "octocat",
		ExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL + "/")
	c.Jar.SetCookies(u, []*http.Cookie{{Name: CookieName, Value: id, Path: "/"}})
	if code, body := get(t, c, srv.URL+"/ui/runs.json"); code != http.StatusServiceUnavailable {
		t.Errorf("runs.json of a GitHub session without GitHub sign-in: %d %s, want 503", code, body)
	}
	if code, _ := get(t, c, srv.URL+"/ui/runs/r1"); code != http.StatusServiceUnavailable {
		t.Errorf("run page of a GitHub session without GitHub sign-in: %d, want 503", code)
	}
}

// Every route is held to a GitHub account's roles before its handler runs, including routes
// that know nothing of GitHub: one on a run or a repository by the account's role there, any
// other only when it filters what it shows (githubFiltered).
func TestGitHubGateHoldsEveryRoute(t *testing.T) {
	s := setupGitHub(t)
	s.fake.SetPermission("acme", "app", "reader", "triage")
	s.fake.SetPermission("acme", "app", "writer", "maintain")
	s.addRun(t, "run-app", "acme/app", time.Now())
	s.addRun(t, "run-secret", "acme/secret", time.Now())
	reply := func(text string) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, text) }
	}
	s.mux.HandleFunc("GET /ui/elsewhere", s.ui.requireSession(store.ScopeRead, false, reply("elsewhere")))
	// (Not at /ui/repos/{owner}/{repo}: the repository page is registered there.)
	s.mux.HandleFunc("GET /ui/gate/repos/{owner}/{repo}", s.ui.requireSession(store.ScopeRead, false, reply("repo page")))
	s.mux.HandleFunc("POST /ui/repos/{owner}/{repo}/dispatch", s.ui.requireSession(store.ScopeDispatch, false, reply("dispatched")))
	// POST /ui/runs/{id}/jobs/{job}/cancel is the UI's own (cancelJob): it redirects to the job.

	reader, rcsrf := s.signInGitHub(t, "reader", "/ui/runs")
	writer, wcsrf := s.signInGitHub(t, "writer", "/ui/runs")
	for _, tc := range []struct {
		who    string
		c      *http.Client
		method string
		path   string
		code   int
		body   string
	}{
		{"reader", reader, "GET", "/ui/elsewhere", http.StatusForbidden, "not available to a GitHub sign-in"},
		{"reader", reader, "GET", "/ui/gate/repos/acme/app", http.StatusOK, "repo page"},
		{"reader", reader, "GET", "/ui/gate/repos/acme/secret", http.StatusNotFound, "no such repository"},
		{"reader", reader, "POST", "/ui/repos/acme/app/dispatch", http.StatusForbidden, "reader cannot write to acme/app"},
		{"reader", reader, "POST", "/ui/runs/run-app/jobs/fix/cancel", http.StatusForbidden, "reader cannot write to acme/app"},
		{"reader", reader, "POST", "/ui/runs/run-secret/jobs/fix/cancel", http.StatusNotFound, "no such run"},
		{"writer", writer, "POST", "/ui/repos/acme/app/dispatch", http.StatusOK, "dispatched"},
		{"writer", writer, "POST", "/ui/runs/run-app/jobs/fix/cancel", http.StatusSeeOther, ""},
		{"writer", writer, "POST", "/ui/repos/acme/secret/dispatch", http.StatusNotFound, "no such repository"},
	} {
		var code int
		var body string
		if tc.method == "GET" {
			code, body = get(t, tc.c, s.srv.URL+tc.path)
		} else {
			csrf := rcsrf
			if tc.who == "writer" {
				csrf = wcsrf
			}
			code, body = s.post(t, tc.c, tc.path, csrf)
		}
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s %s %s: %d %q, want %d %q", tc.who, tc.method, tc.path, code, body, tc.code, tc.body)
		}
	}
	tok, _ := signIn(t, s.srv, s.st, "viewer", store.ScopeRead)
	if code, body := get(t, tok, s.srv.URL+"/ui/elsewhere"); code != http.StatusOK || body != "elsewhere" {
		t.Errorf("a token session on a route that does not filter: %d %q, want 200", code, body)
	}
}
