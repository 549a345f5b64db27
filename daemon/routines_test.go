package daemon_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
	"github.com/agentrunner/agentrunner/web"
	"github.com/agentrunner/agentrunner/workspace"
)

// DefaultConfig reads a real repository's routines at its default branch once, serves them
// from memory for ConfigTTL, then fetches again and sees what was pushed meanwhile.
func TestDefaultConfigReadsTheDefaultBranchOnce(t *testing.T) {
	repoDir, head := gittest.Repo(t, map[string]string{".agents/nightly.yaml": `on:
  schedule: [{cron: "0 3 * * *"}]
  dispatch:
    inputs:
      prompt: {required: true}
agents:
  a: {image: x, command: [x]}
`})
	repos, err := daemon.NewRepos([]daemon.Repo{{Name: "acme/app", URL: repoDir, DefaultBranch: "main"}})
	if err != nil {
		t.Fatal(err)
	}
	wsm, err := workspace.NewManager(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wsm.Close() })
	pipe := &fetchCounter{GitPipeline: &daemon.GitPipeline{Workspaces: wsm, Sandbox: daemon.FakeSandbox{}, Repos: repos, RunsDir: t.TempDir()}}
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC).UnixNano())
	d, err := daemon.New(daemon.Options{Store: storetest.SQLite(t).Open(t), Pipeline: pipe, Repos: repos,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	if got := d.RepoNames(); len(got) != 1 || got[0] != "acme/app" {
		t.Errorf("RepoNames = %v", got)
	}
	if _, _, _, err := d.DefaultConfig(ctx, "acme/other"); err == nil || pipe.fetches.Load() != 0 {
		t.Errorf("a repository not served: err %v after %d fetches, want an error and no fetch", err, pipe.fetches.Load())
	}
	// Page views at once share one fetch.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			cfg, sha, branch, err := d.DefaultConfig(ctx, "acme/app")
			if err != nil || sha != head || branch != "main" || len(cfg.Routines) != 1 || cfg.Routines[0].Name != "nightly" ||
				cfg.Routines[0].On.Dispatch == nil || cfg.Routines[0].On.Dispatch.Inputs[0].Name != "prompt" {
				t.Errorf("DefaultConfig = %+v, %s, %s, %v", cfg, sha, branch, err)
			}
		})
	}
	wg.Wait()
	if n := pipe.fetches.Load(); n != 1 {
		t.Errorf("4 reads at once fetched %d times, want 1", n)
	}

	gittest.WriteFiles(t, repoDir, map[string]string{".agents/weekly.yaml": "on:\n  schedule: [{cron: \"0 4 * * 1\"}]\nagents:\n  a: {image: x, command: [x]}\n"})
	gittest.Git(t, repoDir, "add", "-A")
	gittest.Git(t, repoDir, "commit", "-qm", "weekly")
	newHead := gittest.Git(t, repoDir, "rev-parse", "HEAD")

	clock.Add(int64(daemon.ConfigTTL / 2))
	if cfg, sha, _, err := d.DefaultConfig(ctx, "acme/app"); err != nil || sha != head || len(cfg.Routines) != 1 || pipe.fetches.Load() != 1 {
		t.Errorf("within the TTL: %d routines at %s, %v, %d fetches; want the ones read before, no fetch", len(cfg.Routines), sha, err, pipe.fetches.Load())
	}
	clock.Add(int64(daemon.ConfigTTL))
	cfg, sha, _, err := d.DefaultConfig(ctx, "acme/app")
	if err != nil || sha != newHead || len(cfg.Routines) != 2 || pipe.fetches.Load() != 2 {
		t.Errorf("after the TTL: %d routines at %s (want 2 at %s), %v, %d fetches (want 2)", len(cfg.Routines), sha, newHead, err, pipe.fetches.Load())
	}
}

// uiDispatch is what `runner serve` gives the web UI (cmd/runner's adapter).
type uiDispatch struct{ d *daemon.Daemon }

func (u uiDispatch) Dispatch(ctx context.Context, repo, routine string, inputs map[string]string) (string, error) {
	res, err := u.d.Dispatch(ctx, repo, routine, inputs)
	if err != nil {
		return "", err
	}
	return res.RunID, nil
}

// The Run form of the web UI, on a running daemon serving a real repository: the page lists
// the routine read at the default branch, the form dispatches with its inputs and prompt, the
// browser lands on the run, which the daemon recorded with those inputs.
func TestRunFormDispatchesThroughTheDaemon(t *testing.T) {
	repoDir, head := gittest.Repo(t, map[string]string{".agents/ask.yaml": `description: Ask an agent
on:
  dispatch:
    inputs:
      area: {required: true, options: [api, web]}
      prompt: {required: true}
agents:
  a: {image: x, command: [x, "${{ inputs.prompt }}"]}
`})
	repos, err := daemon.NewRepos([]daemon.Repo{{Name: "acme/app", URL: repoDir, DefaultBranch: "main"}})
	if err != nil {
		t.Fatal(err)
	}
	wsm, err := workspace.NewManager(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wsm.Close() })
	st := storetest.SQLite(t).Open(t)
	d := runDaemon(t, daemon.Options{Store: st, Repos: repos, Poll: 20 * time.Millisecond,
		Pipeline: &daemon.GitPipeline{Workspaces: wsm, Sandbox: daemon.FakeSandbox{}, Repos: repos, RunsDir: t.TempDir()}})
	mux := http.NewServeMux()
	(&web.UI{Store: st, Routines: d, Dispatcher: uiDispatch{d}}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	plain, err := st.CreateToken(t.Context(), store.Token{Name: "ops", Scope: store.ScopeDispatch})
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if res, err := c.PostForm(srv.URL+"/ui/login", url.Values{"token": {plain}}); err != nil || res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %v %v", res, err)
	}
	page := func(method, path string, form url.Values) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	res, body := page("GET", "/ui/repos/acme/app", nil)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if res.StatusCode != http.StatusOK || csrf == nil || !strings.Contains(body, "<code>"+head[:10]+"</code>") ||
		!strings.Contains(body, `action="/ui/repos/acme/app/routines/ask/dispatch"`) {
		t.Fatalf("repository page: %s\n%s", res.Status, body)
	}
	res, body = page("POST", "/ui/repos/acme/app/routines/ask/dispatch", url.Values{"csrf": {csrf[1]}, "input.area": {"web"}, "input.prompt": {"Fix it.\r\nThanks"}})
	id, ok := strings.CutPrefix(res.Header.Get("Location"), "/ui/runs/")
	if res.StatusCode != http.StatusSeeOther || !ok {
		t.Fatalf("Run form: %s to %q\n%s", res.Status, res.Header.Get("Location"), body)
	}
	run, err := st.GetRun(t.Context(), id)
	if err != nil || run.Repo != "acme/app" || run.Routine != "ask" || run.SHA != head || run.EventKind != "dispatch" {
		t.Fatalf("the run the form led to: %+v, %v (want it recorded before the redirect)", run, err)
	}
	del, err := st.GetDelivery(t.Context(), run.DeliveryID)
	if err != nil || !strings.Contains(string(del.Body), `"inputs":{"area":"web","prompt":"Fix it.\nThanks"}`) {
		t.Errorf("the dispatch's delivery: %s, %v", del.Body, err)
	}
	// A required input missing: the daemon is not asked; the form says so.
	res, body = page("POST", "/ui/repos/acme/app/routines/ask/dispatch", url.Values{"csrf": {csrf[1]}, "input.prompt": {"typed"}})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "Fill in area") || !strings.Contains(body, ">typed</textarea>") {
		t.Errorf("missing area: %s\n%s", res.Status, body)
	}
}
