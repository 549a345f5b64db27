package githublogin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/internal/githubfake"
)

// site is a daemon's two sign-in routes around a Flow, against the fake GitHub.
type site struct {
	t    *testing.T
	fake *githubfake.Fake
	flow *Flow
	srv  *httptest.Server
	mu   sync.Mutex
	last error // Finish's error on the last callback
}

func newSite(t *testing.T, secret string) *site {
	t.Helper()
	s := &site{t: t, fake: githubfake.New(t)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ui/login/github", func(w http.ResponseWriter, r *http.Request) {
		s.flow.Begin(w, r, r.URL.Query().Get("next"))
	})
	mux.HandleFunc("GET /ui/login/github/callback", func(w http.ResponseWriter, r *http.Request) {
		who, next, err := s.flow.Finish(w, r)
		s.mu.Lock()
		s.last = err
		s.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "%s %d %s", who.Login, who.ID, next)
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	callback := s.srv.URL + "/ui/login/github/callback"
	s.fake.AddOAuthApp("Iv1.client", "right-secret", callback)
	flow, err := New(Config{ClientID: "Iv1.client", ClientSecret: secret, WebURL: s.fake.WebURL(),
		APIURL: s.fake.EnterpriseURL(), CallbackURL: callback, Key: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	s.flow = flow
	return s
}

// browser is a client with a cookie jar that follows redirects, as a browser does.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *site) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func TestSignInWithGitHub(t *testing.T) {
	s := newSite(t, "right-secret")
	s.fake.SignIn("octocat")
	code, body := get(t, browser(t), s.srv.URL+"/ui/login/github?next="+url.QueryEscape("/ui/runs/r1?tab=log"))
	if code != http.StatusOK || !strings.HasPrefix(body, "octocat ") || !strings.HasSuffix(body, " /ui/runs/r1?tab=log") {
		t.Fatalf("sign-in: %d %q (error %v)", code, body, s.err())
	}
	// The authorize request carried a PKCE challenge and a state; the fake checked the verifier
	// against it when the code was traded.
	var sawChallenge bool
	for _, r := range s.fake.Requests() {
		if r.Path == "/login/oauth/authorize" && r.Query.Get("code_challenge_method") == "S256" && r.Query.Get("state") != "" {
			sawChallenge = true
		}
		if r.Path == "/login/oauth/access_token" && r.Status != http.StatusOK {
			t.Errorf("token exchange answered %d", r.Status)
		}
	}
	if !sawChallenge {
		t.Error("the authorize request had no S256 code challenge or no state")
	}
}

func TestSignInRefusals(t *testing.T) {
	t.Run("declined on GitHub", func(t *testing.T) {
		s := newSite(t, "right-secret")
		s.fake.SignIn("")
		code, _ := get(t, browser(t), s.srv.URL+"/ui/login/github")
		if code != http.StatusForbidden || !errors.Is(s.err(), ErrDeclined) {
			t.Fatalf("declined: %d, %v", code, s.err())
		}
	})
	t.Run("wrong client secret", func(t *testing.T) {
		s := newSite(t, "wrong-secret")
		s.fake.SignIn("octocat")
		code, body := get(t, browser(t), s.srv.URL+"/ui/login/github")
		if code != http.StatusForbidden || !strings.Contains(body, "incorrect_client_credentials") {
			t.Fatalf("wrong secret: %d %q", code, body)
		}
	})
	t.Run("callback from another browser", func(t *testing.T) {
		// Login CSRF: an attacker's own callback URL (their code, their state) opened in the
		// victim's browser, which has no sign-in of its own in progress.
		s := newSite(t, "right-secret")
		s.fake.SignIn("mallory")
		attacker := browser(t)
		attacker.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(req.URL.Path, "/ui/login/github/callback") {
				return http.ErrUseLastResponse
			}
			return nil
		}
		resp, err := attacker.Get(s.srv.URL + "/ui/login/github")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		stolen := resp.Header.Get("Location")
		if !strings.Contains(stolen, "code=") {
			t.Fatalf("no callback URL with a code: %q", stolen)
		}
		code, body := get(t, browser(t), stolen)
		if code != http.StatusForbidden || !strings.Contains(body, "no sign-in in progress") {
			t.Fatalf("victim's browser accepted the attacker's callback: %d %q", code, body)
		}
		// The victim's own sign-in in progress does not help either: its state differs.
		victim := browser(t)
		victim.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
			if strings.Contains(req.URL.Path, "/login/oauth/authorize") {
				return http.ErrUseLastResponse // the victim never finishes on GitHub
			}
			return nil
		}
		resp, err = victim.Get(s.srv.URL + "/ui/login/github")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		code, body = get(t, victim, stolen)
		if code != http.StatusForbidden || !strings.Contains(body, "state does not match") {
			t.Fatalf("state mismatch accepted: %d %q", code, body)
		}
	})
	t.Run("forged flow cookie", func(t *testing.T) {
		s := newSite(t, "right-secret")
		b := browser(t)
		u, _ := url.Parse(s.srv.URL + "/ui/login/github/callback")
		b.Jar.SetCookies(u, []*http.Cookie{{Name: flowCookie, Value: "eyJzIjoieCJ9.bad", Path: flowCookiePath}})
		code, body := get(t, b, s.srv.URL+"/ui/login/github/callback?state=x&code=y")
		if code != http.StatusForbidden || !strings.Contains(body, "not one this daemon made") {
			t.Fatalf("forged cookie: %d %q", code, body)
		}
	})
	t.Run("too slow", func(t *testing.T) {
		s := newSite(t, "right-secret")
		s.fake.SignIn("octocat")
		s.flow.now = func() time.Time { return time.Now().Add(-11 * time.Minute) } // Begin happened 11 min ago
		b := browser(t)
		b.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
			s.flow.now = time.Now
			return nil
		}
		code, body := get(t, b, s.srv.URL+"/ui/login/github")
		if code != http.StatusForbidden || !strings.Contains(body, "longer than 10 minutes") {
			t.Fatalf("stale flow: %d %q", code, body)
		}
	})
}

func TestNextIsAlwaysLocal(t *testing.T) {
	for in, want := range map[string]string{
		"/ui/runs/abc":          "/ui/runs/abc",
		"/ui/runs?status=fail":  "/ui/runs?status=fail",
		"":                      "/ui/",
		"//evil.example/x":      "/ui/",
		"/\\evil.example":       "/ui/",
		"https://evil.example/": "/ui/",
		"javascript:alert(1)":   "/ui/",
		"ui/runs":               "/ui/",
		"/ui/\r\nSet-Cookie:x":  "/ui/",
	} {
		if got := LocalPath(in); got != want {
			t.Errorf("LocalPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewNamesWhatIsMissing(t *testing.T) {
	_, err := New(Config{ClientID: "x", WebURL: "https://github.com", APIURL: "https://api.github.com/", Key: make([]byte, 32)})
	if err == nil || !strings.Contains(err.Error(), "client secret") || !strings.Contains(err.Error(), "callback URL") {
		t.Fatalf("error %v does not name the missing client secret and callback URL", err)
	}
	_, err = New(Config{ClientID: "x", ClientSecret: "y", WebURL: "github.com", APIURL: "https://api.github.com/",
		CallbackURL: "https://runner.example/ui/login/github/callback", Key: make([]byte, 32)})
	if err == nil || !strings.Contains(err.Error(), "web URL") {
		t.Fatalf("a host without a scheme was accepted: %v", err)
	}
}

func TestRolesFromGitHub(t *testing.T) {
	fake := githubfake.New(t)
	fake.AddToken("ghs_install")
	fake.AddRepo("acme", "app", "main", 7)
	fake.SetPermission("acme", "app", "writer", "write")
	fake.SetPermission("acme", "app", "reader", "read")
	fake.SetPermission("acme", "app", "triager", "triage")
	gc, err := github.NewClient(context.Background(), github.Config{BaseURL: fake.EnterpriseURL(), Token: "ghs_install",
		Retry: github.RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	roles := &Roles{Lookup: func(ctx context.Context, owner, repo, login string) (string, error) {
		calls++
		return gc.Installation(0).Permission(ctx, owner, repo, login)
	}}
	ctx := context.Background()
	for _, c := range []struct {
		login       string
		view, steer bool
	}{{"writer", true, true}, {"reader", true, false}, {"triager", true, false}, {"stranger", false, false}} {
		for act, want := range map[Action]bool{View: c.view, Steer: c.steer} {
			got, err := roles.Can(ctx, c.login, "acme", "app", act)
			if err != nil || got != want {
				t.Errorf("%s action %d: %v, %v; want %v", c.login, act, got, err, want)
			}
		}
	}
	if calls != 4 {
		t.Errorf("%d role lookups for 4 people; want one each (cached)", calls)
	}
	// A role taken away on GitHub takes effect once the cached answer expires.
	fake.SetPermission("acme", "app", "writer", "read")
	roles.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if ok, _ := roles.Can(ctx, "writer", "acme", "app", Steer); ok {
		t.Error("a demoted writer can still steer after the cache expired")
	}
	// GitHub unreachable: denied, with the reason.
	fake.FailNext("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission", 500, nil)
	ok, err := roles.Can(ctx, "newcomer", "acme", "app", View)
	if ok || err == nil || !strings.Contains(err.Error(), "newcomer's role on acme/app") {
		t.Errorf("GitHub down: %v, %v", ok, err)
	}
}
