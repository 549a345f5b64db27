package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/web"
)

// The client id and secret come from flags, the environment or a file, and turn on "Sign in
// with GitHub", which sends people to the App's authorize page with the public callback URL.
func TestGitHubSignInSettings(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "client-secret")
	if err := os.WriteFile(secretFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := newServeCmd(&streams{Out: io.Discard, Err: io.Discard})
	if err := cmd.ParseFlags([]string{"--github-client-id", "Iv1.abc", "--github-client-secret-file", secretFile,
		"--public-url", "https://runner.example.com/", "--data-dir", dir}); err != nil {
		t.Fatal(err)
	}
	c, err := (&serveOptions{c: defaultServeConfig()}).settings(cmd.Flags())
	if err != nil {
		t.Fatal(err)
	}
	if c.GitHub.ClientID != "Iv1.abc" || c.GitHub.ClientSecretFile != secretFile {
		t.Fatalf("settings: client id %q, secret file %q", c.GitHub.ClientID, c.GitHub.ClientSecretFile)
	}
	st, err := store.Open(t.Context(), filepath.Join(dir, "runner.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gh, err := github.NewClient(t.Context(), github.Config{Token: "x"})
	if err != nil {
		t.Fatal(err)
	}

	signIn, err := githubSignIn(t.Context(), c, gh, st)
	if err != nil || signIn == nil {
		t.Fatalf("githubSignIn = %v, %v", signIn, err)
	}
	mux := http.NewServeMux()
	(&web.UI{Store: st, GitHub: signIn}).Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ui/login/github?next=/ui/review", nil))
	loc, _ := url.Parse(rec.Header().Get("Location"))
	q := loc.Query()
	if rec.Code != http.StatusFound || loc.Scheme+"://"+loc.Host+loc.Path != "https://github.com/login/oauth/authorize" ||
		q.Get("client_id") != "Iv1.abc" || q.Get("redirect_uri") != "https://runner.example.com/ui/login/github/callback" {
		t.Fatalf("begin: %d to %s", rec.Code, loc)
	}

	off := c
	off.GitHub.ClientID, off.GitHub.ClientSecretFile = "", ""
	if s, err := githubSignIn(t.Context(), off, gh, st); s != nil || err != nil {
		t.Errorf("without a client id and secret: %v, %v; want off", s, err)
	}
	for name, tc := range map[string]struct {
		mutate func(*serveConfig)
		gh     *github.Client
		want   string
	}{
		"no secret":     {func(c *serveConfig) { c.GitHub.ClientSecretFile = "" }, gh, "client secret"},
		"no client id":  {func(c *serveConfig) { c.GitHub.ClientID = "" }, gh, "client id"},
		"no public URL": {func(c *serveConfig) { c.PublicURL = "" }, gh, "--public-url"},
		"no App":        {func(*serveConfig) {}, nil, "--github-app-id"},
	} {
		cc := c
		tc.mutate(&cc)
		if _, err := githubSignIn(t.Context(), cc, tc.gh, st); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.want)
		}
	}

	t.Setenv("AGENTRUNNER_GITHUB_CLIENT_SECRET", "from-env")
	cmd = newServeCmd(&streams{Out: io.Discard, Err: io.Discard})
	_ = cmd.ParseFlags(nil)
	if c, err = (&serveOptions{c: defaultServeConfig()}).settings(cmd.Flags()); err != nil || c.GitHub.ClientSecret != "from-env" {
		t.Errorf("AGENTRUNNER_GITHUB_CLIENT_SECRET: %q, %v", c.GitHub.ClientSecret, err)
	}
}

func TestGitHubWebURL(t *testing.T) {
	for api, want := range map[string]string{
		"https://api.github.com/":       "https://github.com",
		"https://ghe.example/api/v3/":   "https://ghe.example",
		"https://ghe.example/api/v3":    "https://ghe.example",
		"http://127.0.0.1:9999/api/v3/": "http://127.0.0.1:9999",
	} {
		if got, err := githubWebURL(api); err != nil || got != want {
			t.Errorf("githubWebURL(%s) = %q, %v; want %s", api, got, err, want)
		}
	}
}
