package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/store"
)

// The repository's text is hostile too: a description and an option that try to be markup.
var routinesFS = fstest.MapFS{
	".agents/ask.yaml": {Data: []byte(`description: "Ask <script>alert(1)</script> anything"
on:
  dispatch:
    inputs:
      area:
        description: "Which part <img src=x onerror=alert(2)>"
        required: true
        options: [api, "w\"><script>alert(3)</script>"]
      limit:
        default: "50"
      prompt:
        description: What to do
        required: true
agents:
  a: {image: x, command: [x]}
`)},
	".agents/nightly.yaml": {Data: []byte(`on:
  schedule: [{cron: "0 3 * * *"}]
agents:
  a: {image: x, command: [x]}
`)},
}

type fakeConfigs struct{ cfg *config.Config }

func (f fakeConfigs) RepoNames() []string { return []string{"acme/app"} }

func (f fakeConfigs) DefaultConfig(context.Context, string) (*config.Config, string, string, error) {
	return f.cfg, "0123456789abcdef", "main", nil
}

// fakeDispatcher records what it is asked to start and records the run a moment later, as a
// daemon's intake does; err, when set, refuses.
type fakeDispatcher struct {
	st    store.Store
	mu    sync.Mutex
	calls []map[string]string
	err   error
}

func (f *fakeDispatcher) Dispatch(ctx context.Context, repo, routine string, inputs map[string]string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	f.calls = append(f.calls, inputs)
	id := fmt.Sprintf("dispatch-%d-%s", len(f.calls), routine)
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _, _ = f.st.CreateRun(context.WithoutCancel(ctx), store.Run{ID: id, Repo: repo, Routine: routine, EventKind: "dispatch"})
	}()
	return id, nil
}

func setupRoutines(t *testing.T) (*httptest.Server, store.Store, *fakeDispatcher) {
	t.Helper()
	cfg, err := config.LoadFS(routinesFS, ".agents")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "runner.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, _, err := st.CreateRun(t.Context(), store.Run{ID: "r1", Repo: "acme/app", Routine: "ask", SHA: "0123456789abcdef", EventKind: "dispatch"}); err != nil {
		t.Fatal(err)
	}
	disp := &fakeDispatcher{st: st}
	mux := http.NewServeMux()
	(&UI{Store: st, Controller: &fakeController{}, Routines: fakeConfigs{cfg}, Dispatcher: disp}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, st, disp
}

// postRunForm posts form and returns the status, the Location header and the page.
func postRunForm(t *testing.T, c *http.Client, u string, form url.Values) (int, string, string) {
	t.Helper()
	res, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Location"), string(b)
}

func TestRoutinesPagesShowRoutinesSafely(t *testing.T) {
	srv, st, _ := setupRoutines(t)
	c, _ := signIn(t, srv, st, "viewer", store.ScopeRead)

	code, page := get(t, c, srv.URL+"/ui/routines")
	if code != http.StatusOK {
		t.Fatalf("routines page: %d %s", code, page)
	}
	for _, want := range []string{`<a href="/ui/repos/acme/app">acme/app</a>`, `<a href="/ui/repos/acme/app#r-ask">ask</a>`,
		`<a href="/ui/repos/acme/app#r-nightly">nightly</a>`, `<a href="/ui/runs/r1">r1</a>`, `<a class="navlink" href="/ui/routines">Routines</a>`} {
		if !strings.Contains(page, want) {
			t.Errorf("routines page lacks %q:\n%s", want, page)
		}
	}

	code, page = get(t, c, srv.URL+"/ui/repos/acme/app")
	if code != http.StatusOK {
		t.Fatalf("repository page: %d %s", code, page)
	}
	for _, want := range []string{`<h1>acme/app</h1>`, `<code>main</code> <code>0123456789</code>`, `id="r-nightly"`,
		`<strong>schedule</strong> · 0 3 * * *`, `Next ticks (UTC): <time datetime="`, ` 03:00</time>, <time`,
		`<strong>dispatch</strong> · inputs area, limit, prompt`, `<a href="/ui/runs/r1">r1</a>`,
		"Ask &lt;script&gt;alert(1)&lt;/script&gt; anything", "Sign in with a token of scope dispatch"} {
		if !strings.Contains(page, want) {
			t.Errorf("repository page lacks %q:\n%s", want, page)
		}
	}
	for _, bad := range []string{"<script>alert", "<form method=\"post\" action=\"/ui/repos/"} {
		if strings.Contains(page, bad) {
			t.Errorf("repository page for a read session has %q:\n%s", bad, page)
		}
	}
	if code, page := get(t, c, srv.URL+"/ui/repos/acme/other"); code != http.StatusNotFound || !strings.Contains(page, "/ui/routines lists") {
		t.Errorf("a repository not served: %d %s", code, page)
	}
}

func TestRunFormDispatchesWithInputsAndPrompt(t *testing.T) {
	srv, st, disp := setupRoutines(t)
	c, csrf := signIn(t, srv, st, "ops", store.ScopeDispatch)

	code, page := get(t, c, srv.URL+"/ui/repos/acme/app")
	if code != http.StatusOK {
		t.Fatalf("repository page: %d %s", code, page)
	}
	for _, want := range []string{`<form method="post" action="/ui/repos/acme/app/routines/ask/dispatch">`,
		`<input type="hidden" name="csrf" value="` + csrf + `">`,
		`<select id="in-ask-area" name="input.area" required aria-describedby="in-ask-area-hint">`,
		`<option value="">choose…</option><option value="api">api</option>`,
		`<input id="in-ask-limit" name="input.limit" value="50">`,
		`<textarea id="in-ask-prompt" name="input.prompt" rows="6" required aria-describedby="in-ask-prompt-hint"></textarea>`,
		`Prompt <span class="req">(required)</span>`, "Which part &lt;img src=x onerror=alert(2)&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("Run form lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img src=x") || strings.Contains(page, `action="/ui/repos/acme/app/routines/nightly/`) {
		t.Errorf("repository page has raw markup or a form for a routine without on.dispatch:\n%s", page)
	}

	dispatchURL := srv.URL + "/ui/repos/acme/app/routines/ask/dispatch"
	code, loc, body := postRunForm(t, c, dispatchURL, url.Values{"csrf": {csrf}, "input.area": {"api"}, "input.limit": {""},
		"input.prompt": {"Fix the flaky test.\r\nThen <b>stop</b>."}, "input.extra": {"ignored"}})
	if code != http.StatusSeeOther || loc != "/ui/runs/dispatch-1-ask" {
		t.Fatalf("dispatch: %d to %q, want 303 to the new run:\n%s", code, loc, body)
	}
	// The redirect waited for the run to be recorded: its page is there.
	if code, page := get(t, c, srv.URL+loc); code != http.StatusOK {
		t.Errorf("the new run's page: %d %s", code, page)
	}
	if len(disp.calls) != 1 || len(disp.calls[0]) != 2 || disp.calls[0]["area"] != "api" || disp.calls[0]["prompt"] != "Fix the flaky test.\nThen <b>stop</b>." {
		t.Errorf("dispatched inputs %q, want area and the prompt (an empty input left to its default, undeclared ones dropped)", disp.calls)
	}
}

func TestRunFormRefusalsKeepWhatWasTyped(t *testing.T) {
	srv, st, disp := setupRoutines(t)
	c, csrf := signIn(t, srv, st, "ops", store.ScopeDispatch)
	dispatchURL := srv.URL + "/ui/repos/acme/app/routines/ask/dispatch"

	// A missing required input: the page again, the reason, what was typed, escaped.
	code, _, page := postRunForm(t, c, dispatchURL, url.Values{"csrf": {csrf}, "input.limit": {"7"}, "input.prompt": {"Tidy </textarea><script>alert(4)</script> up"}})
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("missing area: %d, want 422:\n%s", code, page)
	}
	for _, want := range []string{`<details class="run-form" open>`, `<p class="error" role="alert">Fill in area: it is required.</p>`,
		`<input id="in-ask-limit" name="input.limit" value="7">`, ">Tidy &lt;/textarea&gt;&lt;script&gt;alert(4)&lt;/script&gt; up</textarea>"} {
		if !strings.Contains(page, want) {
			t.Errorf("refused form lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script>alert") {
		t.Errorf("refused form shows typed markup raw:\n%s", page)
	}
	// An option not offered.
	code, _, page = postRunForm(t, c, dispatchURL, url.Values{"csrf": {csrf}, "input.area": {"db"}, "input.prompt": {"x"}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(page, "area must be one of api, w&#34;&gt;&lt;script&gt;") || !strings.Contains(page, `<option value="api">api</option>`) {
		t.Errorf("an option not offered: %d:\n%s", code, page)
	}
	// The daemon refuses (draining): the reason and what was typed.
	disp.err = errors.New("the runner is shutting down; retry later")
	code, _, page = postRunForm(t, c, dispatchURL, url.Values{"csrf": {csrf}, "input.area": {"api"}, "input.prompt": {"keep me"}})
	if code != http.StatusServiceUnavailable || !strings.Contains(page, "Not dispatched: the runner is shutting down; retry later") ||
		!strings.Contains(page, ">keep me</textarea>") || !strings.Contains(page, `<option value="api" selected>api</option>`) {
		t.Errorf("draining daemon: %d:\n%s", code, page)
	}
	disp.err = nil
	// A routine that is not there, or that cannot be dispatched.
	code, _, page = postRunForm(t, c, srv.URL+"/ui/repos/acme/app/routines/gone/dispatch", url.Values{"csrf": {csrf}})
	if code != http.StatusNotFound || !strings.Contains(page, "There is no routine gone on main any more") {
		t.Errorf("unknown routine: %d:\n%s", code, page)
	}
	code, _, page = postRunForm(t, c, srv.URL+"/ui/repos/acme/app/routines/nightly/dispatch", url.Values{"csrf": {csrf}})
	if code != http.StatusUnprocessableEntity || !strings.Contains(page, "has no on.dispatch trigger") {
		t.Errorf("routine without on.dispatch: %d:\n%s", code, page)
	}
	// No CSRF token, a wrong one, or a read session: refused before anything is dispatched.
	for _, form := range []url.Values{{"input.area": {"api"}, "input.prompt": {"x"}}, {"csrf": {csrf + "x"}, "input.area": {"api"}, "input.prompt": {"x"}}} {
		if code, _, page := postRunForm(t, c, dispatchURL, form); code != http.StatusForbidden || !strings.Contains(page, "CSRF") {
			t.Errorf("post without the right CSRF token: %d %s", code, page)
		}
	}
	reader, readCSRF := signIn(t, srv, st, "viewer", store.ScopeRead)
	if code, _, page := postRunForm(t, reader, dispatchURL, url.Values{"csrf": {readCSRF}, "input.area": {"api"}, "input.prompt": {"x"}}); code != http.StatusForbidden || !strings.Contains(page, "needs scope dispatch") {
		t.Errorf("read session dispatching: %d %s", code, page)
	}
	if len(disp.calls) != 0 {
		t.Errorf("refused forms dispatched %q", disp.calls)
	}
}

// twoRepos serves the same routines for acme/app and acme/secret.
type twoRepos struct{ fakeConfigs }

func (twoRepos) RepoNames() []string { return []string{"acme/app", "acme/secret"} }

// A GitHub session lists the routines of the repositories its account can read, and gets a
// Run form only where it can write.
func TestRoutinesPagesFollowGitHubRoles(t *testing.T) {
	s := setupGitHub(t)
	cfg, err := config.LoadFS(routinesFS, ".agents")
	if err != nil {
		t.Fatal(err)
	}
	disp := &fakeDispatcher{st: s.st}
	s.ui.Routines, s.ui.Dispatcher = twoRepos{fakeConfigs{cfg}}, disp
	s.fake.SetPermission("acme", "app", "reader", "triage")
	s.fake.SetPermission("acme", "app", "writer", "maintain")
	reader, rcsrf := s.signInGitHub(t, "reader", "/ui/routines")
	writer, _ := s.signInGitHub(t, "writer", "/ui/routines")

	code, page := get(t, reader, s.srv.URL+"/ui/routines")
	if code != http.StatusOK || !strings.Contains(page, `href="/ui/repos/acme/app"`) || strings.Contains(page, "acme/secret") {
		t.Errorf("reader's routines page: %d, want acme/app only:\n%s", code, page)
	}
	code, page = get(t, reader, s.srv.URL+"/ui/repos/acme/app")
	if code != http.StatusOK || strings.Contains(page, `routines/ask/dispatch`) {
		t.Errorf("reader's repository page: %d, want no Run form:\n%s", code, page)
	}
	if code, _ := get(t, reader, s.srv.URL+"/ui/repos/acme/secret"); code != http.StatusNotFound {
		t.Errorf("reader on a repository it cannot read: %d, want 404", code)
	}
	code, page = get(t, writer, s.srv.URL+"/ui/repos/acme/app")
	if code != http.StatusOK || !strings.Contains(page, `action="/ui/repos/acme/app/routines/ask/dispatch"`) {
		t.Errorf("writer's repository page: %d, want the Run form:\n%s", code, page)
	}
	nc := *reader
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if code, _, page := postRunForm(t, &nc, s.srv.URL+"/ui/repos/acme/app/routines/ask/dispatch",
		url.Values{"csrf": {rcsrf}, "input.area": {"api"}, "input.prompt": {"x"}}); code != http.StatusForbidden || len(disp.calls) != 0 {
		t.Errorf("reader dispatching: %d %s, %d dispatches", code, page, len(disp.calls))
	}
}
