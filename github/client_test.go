package github_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	gh "github.com/google/go-github/v62/github"

	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/internal/githubfake"
)

var start = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// tokenClient is a static-token client on the fake, GHE-style base URL, fake clock.
func tokenClient(t *testing.T, f *githubfake.Fake, clock *githubfake.Clock, mutate ...func(*github.Config)) *gh.Client {
	t.Helper()
	cfg := github.Config{BaseURL: f.EnterpriseURL(), Token: "pat-secret", Clock: clock}
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := github.NewClient(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c.Installation(0).REST()
}

func TestEveryOperationThroughGoGitHub(t *testing.T) {
	clock := githubfake.NewClock(start)
	f := githubfake.New(t, githubfake.WithClock(clock))
	f.AddToken("pat-secret")
	f.SetRef("o", "r", "heads/main", "base-sha")
	f.SetFile("o", "r", "", ".agents/a.yaml", []byte("name: a\n"))
	f.SetPermission("o", "r", "alice", "maintain")
	c := tokenClient(t, f, clock)
	ctx := t.Context()

	// repos and contents
	repo, _, err := c.Repositories.Get(ctx, "o", "r")
	if err != nil || repo.GetDefaultBranch() != "main" || repo.GetFullName() != "o/r" {
		t.Fatalf("repos get: %v %+v", err, repo)
	}
	fc, _, _, err := c.Repositories.GetContents(ctx, "o", "r", ".agents/a.yaml", &gh.RepositoryContentGetOptions{Ref: "main"})
	if err != nil {
		t.Fatalf("contents: %v", err)
	}
	if got, _ := fc.GetContent(); got != "name: a\n" {
		t.Errorf("contents = %q", got)
	}
	br, _, err := c.Repositories.GetBranch(ctx, "o", "r", "main", 0)
	if err != nil || br.GetCommit().GetSHA() != "base-sha" {
		t.Errorf("get branch: %v %+v", err, br)
	}

	// check runs: create queued, update in_progress, complete with annotations, list, get
	cr, _, err := c.Checks.CreateCheckRun(ctx, "o", "r", gh.CreateCheckRunOptions{
		Name: "agents/review", HeadSHA: "base-sha", Status: gh.String("queued"), ExternalID: gh.String("run-1"),
		DetailsURL: gh.String("https://runner.example/runs/1")})
	if err != nil || cr.GetID() == 0 || cr.GetStatus() != "queued" || cr.GetHTMLURL() == "" {
		t.Fatalf("create check run: %v %+v", err, cr)
	}
	if _, _, err = c.Checks.UpdateCheckRun(ctx, "o", "r", cr.GetID(), gh.UpdateCheckRunOptions{Name: "agents/review", Status: gh.String("in_progress")}); err != nil {
		t.Fatalf("update check run: %v", err)
	}
	done, _, err := c.Checks.UpdateCheckRun(ctx, "o", "r", cr.GetID(), gh.UpdateCheckRunOptions{
		Name: "agents/review", Conclusion: gh.String("failure"), CompletedAt: &gh.Timestamp{Time: clock.Now()},
		Output: &gh.CheckRunOutput{Title: gh.String("1 finding"), Summary: gh.String("| agent | outcome |"),
			Annotations: []*gh.CheckRunAnnotation{{Path: gh.String("a.go"), StartLine: gh.Int(3), EndLine: gh.Int(3),
				AnnotationLevel: gh.String("warning"), Message: gh.String("unused")}}}})
	if err != nil || done.GetStatus() != "completed" || done.GetConclusion() != "failure" || done.GetOutput().GetAnnotationsCount() != 1 {
		t.Fatalf("complete check run: %v %+v", err, done)
	}
	list, _, err := c.Checks.ListCheckRunsForRef(ctx, "o", "r", "main", &gh.ListCheckRunsOptions{CheckName: gh.String("agents/review"), Filter: gh.String("all")})
	if err != nil || list.GetTotal() != 1 || list.CheckRuns[0].GetExternalID() != "run-1" {
		t.Fatalf("list check runs: %v %+v", err, list)
	}
	if got, _, err := c.Checks.GetCheckRun(ctx, "o", "r", cr.GetID()); err != nil || got.GetName() != "agents/review" {
		t.Errorf("get check run: %v %+v", err, got)
	}
	if h := f.CheckRuns()[0].History; fmt.Sprint(h) != "[queued in_progress completed]" {
		t.Errorf("check run history = %v", h)
	}

	// refs
	ref, _, err := c.Git.CreateRef(ctx, "o", "r", &gh.Reference{Ref: gh.String("refs/heads/agents/review/k"), Object: &gh.GitObject{SHA: gh.String("s1")}})
	if err != nil || ref.GetObject().GetSHA() != "s1" {
		t.Fatalf("create ref: %v", err)
	}
	if _, _, err = c.Git.UpdateRef(ctx, "o", "r", &gh.Reference{Ref: gh.String("refs/heads/agents/review/k"), Object: &gh.GitObject{SHA: gh.String("s2")}}, true); err != nil {
		t.Fatalf("update ref: %v", err)
	}
	got, _, err := c.Git.GetRef(ctx, "o", "r", "heads/agents/review/k")
	if err != nil || got.GetObject().GetSHA() != "s2" {
		t.Fatalf("get ref: %v %+v", err, got)
	}
	if _, resp, err := c.Git.GetRef(ctx, "o", "r", "heads/nope"); err == nil || resp.StatusCode != 404 {
		t.Errorf("missing ref: %v", err)
	}

	// pull requests
	pr, _, err := c.PullRequests.Create(ctx, "o", "r", &gh.NewPullRequest{Title: gh.String("Audit fixes"),
		Head: gh.String("agents/review/k"), Base: gh.String("main"), Body: gh.String("body"), Draft: gh.Bool(true)})
	if err != nil || pr.GetNumber() != 1 || !pr.GetDraft() || pr.GetHTMLURL() == "" {
		t.Fatalf("create PR: %v %+v", err, pr)
	}
	if _, _, err = c.PullRequests.Create(ctx, "o", "r", &gh.NewPullRequest{Title: gh.String("again"), Head: gh.String("agents/review/k"), Base: gh.String("main")}); err == nil {
		t.Error("a second open PR for the same head and base was accepted")
	}
	for _, tc := range []struct {
		opts gh.PullRequestListOptions
		want int
	}{
		{gh.PullRequestListOptions{Head: "o:agents/review/k"}, 1},
		{gh.PullRequestListOptions{Head: "o:other"}, 0},
		{gh.PullRequestListOptions{Base: "main", State: "all"}, 1},
		{gh.PullRequestListOptions{State: "closed"}, 0},
	} {
		prs, _, err := c.PullRequests.List(ctx, "o", "r", &tc.opts)
		if err != nil || len(prs) != tc.want {
			t.Errorf("list PRs %+v: %v, got %d want %d", tc.opts, err, len(prs), tc.want)
		}
	}
	if up, _, err := c.PullRequests.Edit(ctx, "o", "r", 1, &gh.PullRequest{Body: gh.String("new body")}); err != nil || up.GetBody() != "new body" {
		t.Errorf("edit PR: %v", err)
	}
	if p, _, err := c.PullRequests.Get(ctx, "o", "r", 1); err != nil || p.GetHead().GetRef() != "agents/review/k" {
		t.Errorf("get PR: %v", err)
	}

	// comments
	cm, _, err := c.Issues.CreateComment(ctx, "o", "r", 1, &gh.IssueComment{Body: gh.String("<!-- agents:review -->\nhi")})
	if err != nil || cm.GetID() == 0 {
		t.Fatalf("create comment: %v", err)
	}
	cms, _, err := c.Issues.ListComments(ctx, "o", "r", 1, &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: 100}})
	if err != nil || len(cms) != 1 {
		t.Fatalf("list comments: %v %d", err, len(cms))
	}
	if _, _, err = c.Issues.EditComment(ctx, "o", "r", cm.GetID(), &gh.IssueComment{Body: gh.String("edited")}); err != nil {
		t.Fatalf("edit comment: %v", err)
	}
	if c := f.Comments(); len(c) != 1 || c[0].Body != "edited" || c[0].Updates != 1 {
		t.Errorf("comment state = %+v", c)
	}
	if v := f.Violations(); len(v) != 0 {
		t.Errorf("violations: %q", v)
	}
}

func TestCommentListPaginates(t *testing.T) {
	f := githubfake.New(t)
	c := tokenClient(t, f, githubfake.NewClock(start))
	for i := range 5 {
		if _, _, err := c.Issues.CreateComment(t.Context(), "o", "r", 9, &gh.IssueComment{Body: gh.String(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	opts := &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: 2}}
	var all []string
	for {
		page, resp, err := c.Issues.ListComments(t.Context(), "o", "r", 9, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, cm := range page {
			all = append(all, cm.GetBody())
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	if fmt.Sprint(all) != "[0 1 2 3 4]" {
		t.Errorf("paged comments = %v", all)
	}
}

func TestPermission(t *testing.T) {
	f := githubfake.New(t)
	for user, role := range map[string]string{"ad": "admin", "ma": "maintain", "wr": "write", "tr": "triage", "re": "read"} {
		f.SetPermission("o", "r", user, role)
	}
	c, err := github.NewClient(t.Context(), github.Config{BaseURL: f.URL(), Token: "x"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user, want string
		write      bool
	}{
		{"ad", "admin", true}, {"ma", "maintain", true}, {"wr", "write", true},
		{"tr", "triage", false}, {"re", "read", false}, {"stranger", "none", false},
	}
	for _, tc := range tests {
		got, err := c.Installation(0).Permission(t.Context(), "o", "r", tc.user)
		if err != nil || got != tc.want || github.CanWrite(got) != tc.write {
			t.Errorf("%s: got %q, %v (CanWrite %v), want %q (CanWrite %v)", tc.user, got, err, github.CanWrite(got), tc.want, tc.write)
		}
	}
}

func TestRetryPolicy(t *testing.T) {
	body := gh.CreateCheckRunOptions{Name: "agents/x", HeadSHA: "abc"}
	future := func(clock *githubfake.Clock, d time.Duration) string {
		return strconv.FormatInt(clock.Now().Add(d).Unix(), 10)
	}
	tests := []struct {
		name      string
		method    string // POST creates a check run, GET reads the repo
		faults    func(f *githubfake.Fake, clock *githubfake.Clock)
		wantTries int
		wantErr   bool
		minSlept  time.Duration
		maxSlept  time.Duration
		wantInErr string
	}{
		{name: "502 then 200 is retried, even for a POST", method: "POST",
			faults: func(f *githubfake.Fake, _ *githubfake.Clock) {
				f.FailNext("POST", "/repos/{owner}/{repo}/check-runs", 502, nil)
			},
			wantTries: 2, minSlept: 500 * time.Millisecond, maxSlept: time.Second},
		{name: "429 with retry-after 2 waits at least 2s", method: "POST",
			faults: func(f *githubfake.Fake, _ *githubfake.Clock) {
				f.FailNext("POST", "/repos/{owner}/{repo}/check-runs", 429, map[string]string{"Retry-After": "2"})
			},
			wantTries: 2, minSlept: 2 * time.Second, maxSlept: 2 * time.Second},
		{name: "422 is not retried", method: "POST",
			faults: func(f *githubfake.Fake, _ *githubfake.Clock) {
				f.FailNext("POST", "/repos/{owner}/{repo}/check-runs", 422, nil)
			},
			wantTries: 1, wantErr: true},
		{name: "a plain 403 is not retried", method: "GET",
			faults:    func(f *githubfake.Fake, _ *githubfake.Clock) { f.FailNext("GET", "/repos/{owner}/{repo}", 403, nil) },
			wantTries: 1, wantErr: true},
		{name: "primary rate limit waits until x-ratelimit-reset", method: "GET",
			faults: func(f *githubfake.Fake, clock *githubfake.Clock) {
				f.FailNext("GET", "/repos/{owner}/{repo}", 403, map[string]string{"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": future(clock, 30*time.Second)})
			},
			wantTries: 2, minSlept: 30 * time.Second, maxSlept: 32 * time.Second},
		{name: "a rate limit resetting beyond the wait cap gives up at once", method: "GET",
			faults: func(f *githubfake.Fake, clock *githubfake.Clock) {
				f.FailNext("GET", "/repos/{owner}/{repo}", 403, map[string]string{"X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": future(clock, time.Hour)})
			},
			wantTries: 1, wantErr: true, wantInErr: "more than the 2m0s limit"},
		{name: "secondary rate limit without retry-after waits 60s", method: "POST",
			faults: func(f *githubfake.Fake, _ *githubfake.Clock) {
				f.Fail(githubfake.Fault{Method: "POST", Path: "/repos/{owner}/{repo}/check-runs", Status: 403,
					Body: `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}`})
			},
			wantTries: 2, minSlept: 60 * time.Second, maxSlept: 60 * time.Second},
		{name: "500 on a POST is not retried: it may have been applied", method: "POST",
			faults: func(f *githubfake.Fake, _ *githubfake.Clock) {
				f.FailNext("POST", "/repos/{owner}/{repo}/check-runs", 500, nil)
			},
			wantTries: 1, wantErr: true, wantInErr: "500"},
		{name: "500 on a GET is retried", method: "GET",
			faults:    func(f *githubfake.Fake, _ *githubfake.Clock) { f.FailNext("GET", "/repos/{owner}/{repo}", 500, nil) },
			wantTries: 2, minSlept: 500 * time.Millisecond},
		{name: "5 x 502 exhausts the attempts with a clear error", method: "GET",
			faults: func(f *githubfake.Fake, _ *githubfake.Clock) {
				f.Fail(githubfake.Fault{Method: "GET", Path: "/repos/{owner}/{repo}", Status: 502, Times: 5})
			},
			wantTries: 5, wantErr: true, minSlept: 7500 * time.Millisecond, maxSlept: 15 * time.Second,
			wantInErr: "github: GET /api/v3/repos/o/r: giving up after 5 attempt(s), last status 502"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := githubfake.NewClock(start)
			f := githubfake.New(t, githubfake.WithClock(clock))
			tc.faults(f, clock)
			c := tokenClient(t, f, clock)
			began := time.Now()
			var err error
			if tc.method == "POST" {
				_, _, err = c.Checks.CreateCheckRun(t.Context(), "o", "r", body)
			} else {
				_, _, err = c.Repositories.Get(t.Context(), "o", "r")
			}
			if real := time.Since(began); real > 2*time.Second {
				t.Errorf("took %s of real time; waits must go through the fake clock", real)
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.wantInErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantInErr)) {
				t.Errorf("err = %v, want it to contain %q", err, tc.wantInErr)
			}
			if n := len(f.Requests()); n != tc.wantTries {
				t.Errorf("requests = %d, want %d", n, tc.wantTries)
			}
			slept := clock.Slept()
			if slept < tc.minSlept || (tc.maxSlept > 0 && slept > tc.maxSlept) || (tc.minSlept == 0 && slept != 0) {
				t.Errorf("slept %s (%v), want between %s and %s", slept, clock.Sleeps(), tc.minSlept, tc.maxSlept)
			}
		})
	}
}

func TestRetryErrorCarriesDetails(t *testing.T) {
	clock := githubfake.NewClock(start)
	f := githubfake.New(t, githubfake.WithClock(clock))
	f.Fail(githubfake.Fault{Method: "GET", Path: "/repos/o/r", Status: 503, Times: 3})
	c := tokenClient(t, f, clock, func(cfg *github.Config) { cfg.Retry.MaxAttempts = 3 })
	_, _, err := c.Repositories.Get(t.Context(), "o", "r")
	var re *github.RetryError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a *github.RetryError", err)
	}
	if re.Method != "GET" || re.Path != "/api/v3/repos/o/r" || re.Status != 503 || re.Attempts != 3 {
		t.Errorf("RetryError = %+v", re)
	}
}

// flakyTransport fails every request with err before (or instead of) reaching the server.
type flakyTransport struct {
	mu    sync.Mutex
	calls int
	err   error
}

func (ft *flakyTransport) RoundTrip(*http.Request) (*http.Response, error) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.calls++
	return nil, ft.err
}

func TestTransportErrors(t *testing.T) {
	tests := []struct {
		name   string
		method string
		err    error
		tries  int
	}{
		{"a GET after a connection reset is retried", "GET", io.ErrUnexpectedEOF, 5},
		{"a POST after a connection reset is not retried: it may have been sent", "POST", io.ErrUnexpectedEOF, 1},
		{"a POST that could not connect is retried", "POST", &netDialError, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := githubfake.NewClock(start)
			ft := &flakyTransport{err: tc.err}
			c, err := github.NewClient(t.Context(), github.Config{BaseURL: "https://ghe.example/api/v3/", Token: "x", Clock: clock,
				HTTPClient: &http.Client{Transport: ft}})
			if err != nil {
				t.Fatal(err)
			}
			rest := c.Installation(0).REST()
			if tc.method == "POST" {
				_, _, err = rest.Checks.CreateCheckRun(t.Context(), "o", "r", gh.CreateCheckRunOptions{Name: "n", HeadSHA: "s"})
			} else {
				_, _, err = rest.Repositories.Get(t.Context(), "o", "r")
			}
			var re *github.RetryError
			if !errors.As(err, &re) || re.Attempts != tc.tries || ft.calls != tc.tries {
				t.Errorf("err = %v, calls %d, want a RetryError after %d tries", err, ft.calls, tc.tries)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("err = %v does not wrap %v", err, tc.err)
			}
		})
	}
}

// cancelingClock cancels the request's context when asked to wait, like a shutdown mid-backoff.
type cancelingClock struct {
	*githubfake.Clock
	cancel context.CancelFunc
}

func (c cancelingClock) Sleep(ctx context.Context, d time.Duration) error {
	c.cancel()
	return c.Clock.Sleep(ctx, d)
}

func TestCancelDuringBackoffStopsRetrying(t *testing.T) {
	clock := githubfake.NewClock(start)
	f := githubfake.New(t, githubfake.WithClock(clock))
	f.Fail(githubfake.Fault{Method: "GET", Path: "/repos/o/r", Status: 502, Times: 1})
	ctx, cancel := context.WithCancel(t.Context())
	c, err := github.NewClient(ctx, github.Config{BaseURL: f.URL(), Token: "x", Clock: cancelingClock{clock, cancel}})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Installation(0).REST().Repositories.Get(ctx, "o", "r")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if n := len(f.Requests()); n != 1 {
		t.Errorf("requests = %d, want 1", n)
	}
}

func newAppKey(t *testing.T) (*rsa.PrivateKey, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func TestAppInstallationTokens(t *testing.T) {
	clock := githubfake.NewClock(start)
	f := githubfake.New(t, githubfake.WithClock(clock))
	key, pemBytes := newAppKey(t)
	f.AddApp(42, &key.PublicKey)
	f.AddRepo("o", "r", "main", 7)
	var logs bytes.Buffer
	c, err := github.NewClient(t.Context(), github.Config{BaseURL: f.EnterpriseURL(), AppID: 42, PrivateKeyPEM: pemBytes,
		InstallationID: 7, Clock: clock, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	id, err := c.RepoInstallation(ctx, "o", "r")
	if err != nil || id != 7 {
		t.Fatalf("repo installation = %d, %v", id, err)
	}
	rest := c.Installation(0).REST()
	f.FailNext("GET", "/repos/{owner}/{repo}", 502, nil) // a retry must not leak the token into logs
	for range 3 {
		if _, _, err := rest.Repositories.Get(ctx, "o", "r"); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.TokensIssued(); n != 1 {
		t.Errorf("tokens minted for 3 calls = %d, want 1 (cached)", n)
	}
	tok, exp, err := c.InstallationToken(ctx, 7)
	if err != nil || tok == "" || !exp.Equal(start.Add(time.Hour)) || f.TokensIssued() != 1 {
		t.Errorf("InstallationToken = %q, %s, %v (minted %d)", tok, exp, err, f.TokensIssued())
	}
	if strings.Contains(logs.String(), tok) || !strings.Contains(logs.String(), "retried") {
		t.Errorf("logs leak the token or miss the retry: %s", logs.String())
	}

	// The JWT GitHub saw: RS256, iss = app id, iat 60 s back, exp within 10 minutes of iat.
	mint := f.RequestsTo("apps/create-installation-access-token")
	if len(mint) != 1 {
		t.Fatalf("mint requests = %d", len(mint))
	}
	var claims jwt.RegisteredClaims
	raw := strings.TrimPrefix(mint[0].Header.Get("Authorization"), "Bearer ")
	if _, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithTimeFunc(clock.Now), jwt.WithValidMethods([]string{"RS256"})); err != nil {
		t.Fatalf("JWT: %v", err)
	}
	if claims.Issuer != "42" || !claims.IssuedAt.Equal(start.Add(-time.Minute)) || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 10*time.Minute {
		t.Errorf("JWT claims = %+v", claims)
	}
	for _, r := range f.Requests() {
		if r.Operation == "repos/get" && r.Header.Get("Authorization") != "Bearer "+tok {
			t.Errorf("repos/get sent %q, want the installation token", r.Header.Get("Authorization"))
		}
	}

	// 54 minutes on, the token has 6 left: still used. At 56 it is within 5 minutes: replaced.
	clock.Advance(54 * time.Minute)
	if _, _, err := rest.Repositories.Get(ctx, "o", "r"); err != nil || f.TokensIssued() != 1 {
		t.Errorf("at +54m: %v, minted %d, want 1", err, f.TokensIssued())
	}
	clock.Advance(2 * time.Minute)
	if _, _, err := rest.Repositories.Get(ctx, "o", "r"); err != nil || f.TokensIssued() != 2 {
		t.Errorf("at +56m: %v, minted %d, want 2", err, f.TokensIssued())
	}
	tok2, _, _ := c.InstallationToken(ctx, 0)
	if tok2 == tok {
		t.Error("the refreshed token equals the old one")
	}
}

func TestInstallationTokenConcurrentCallersMintOnce(t *testing.T) {
	clock := githubfake.NewClock(start)
	f := githubfake.New(t, githubfake.WithClock(clock))
	key, pemBytes := newAppKey(t)
	f.AddApp(42, &key.PublicKey)
	c, err := github.NewClient(t.Context(), github.Config{BaseURL: f.URL(), AppID: 42, PrivateKeyPEM: pemBytes, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	toks := make([]string, 20)
	for i := range toks {
		wg.Go(func() {
			id := int64(100 + i%2) // two installations
			var err error
			toks[i], _, err = c.InstallationToken(t.Context(), id)
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := f.TokensIssued(); n != 2 {
		t.Errorf("minted %d tokens for 2 installations, want 2", n)
	}
	if toks[0] == toks[1] || toks[0] != toks[2] {
		t.Errorf("tokens not per installation: %q %q %q", toks[0], toks[1], toks[2])
	}
}

func TestWrongAppKeyIsRejected(t *testing.T) {
	clock := githubfake.NewClock(start)
	f := githubfake.New(t, githubfake.WithClock(clock))
	key, _ := newAppKey(t)
	_, otherPEM := newAppKey(t)
	f.AddApp(42, &key.PublicKey)
	c, err := github.NewClient(t.Context(), github.Config{BaseURL: f.URL(), AppID: 42, PrivateKeyPEM: otherPEM, InstallationID: 1, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.InstallationToken(t.Context(), 0)
	var er *gh.ErrorResponse
	if !errors.As(err, &er) || er.Response.StatusCode != 401 || !strings.Contains(err.Error(), "installation 1") {
		t.Errorf("err = %v, want a 401 naming the installation", err)
	}
}

func TestNewClientRejectsBadConfig(t *testing.T) {
	_, pemBytes := newAppKey(t)
	tests := []struct {
		name string
		cfg  github.Config
		want string
	}{
		{"no credentials", github.Config{}, "no credentials"},
		{"both token and app", github.Config{Token: "t", AppID: 1, PrivateKeyPEM: pemBytes}, "not both"},
		{"app without key", github.Config{AppID: 1}, "needs both"},
		{"garbage key", github.Config{AppID: 1, PrivateKeyPEM: []byte("nope")}, "private key"},
		{"bad base URL", github.Config{Token: "t", BaseURL: "://x"}, "base URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := github.NewClient(t.Context(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestFakeRejectsWrongBodySentThroughTheClient(t *testing.T) {
	rec := &recordingTB{TB: t}
	f := githubfake.New(rec)
	c := tokenClient(t, f, githubfake.NewClock(start))
	_, resp, err := c.Checks.CreateCheckRun(t.Context(), "o", "r", gh.CreateCheckRunOptions{Name: "n", HeadSHA: "s", Status: gh.String("bogus")})
	if err == nil || resp.StatusCode != 422 {
		t.Errorf("bogus status: err %v, want a 422", err)
	}
	req, _ := c.NewRequest("POST", "repos/o/r/check-runs", map[string]string{"head_sha": "s"})
	if resp, err := c.Do(t.Context(), req, nil); err == nil || resp.StatusCode != 422 {
		t.Errorf("missing name: err %v, want a 422", err)
	}
	if v := f.Violations(); len(v) != 2 || len(rec.errs) != 2 || len(f.Requests()) != 2 {
		t.Errorf("violations %q, failures %q: want 2 each and no retry", v, rec.errs)
	}
}

type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recordingTB) Helper() {}

var netDialError = net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
