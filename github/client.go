package github

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	gh "github.com/google/go-github/v62/github"
	"github.com/hashicorp/go-cleanhttp"
)

// Config says how to reach GitHub and as whom. Set either Token, or AppID with PrivateKeyPEM.
type Config struct {
	// BaseURL is the REST API root: empty for github.com, "https://ghe.example/api/v3/" for GitHub
	// Enterprise Server.
	BaseURL string
	// Token is a static token (personal access token, or a token handed in by a workflow).
	Token string
	// AppID and PrivateKeyPEM authenticate as a GitHub App; installation tokens are minted from them.
	AppID         int64
	PrivateKeyPEM []byte
	// InstallationID is the default installation, used when a caller passes 0.
	InstallationID int64
	// HTTPClient supplies the underlying transport (proxies, TLS). Its Transport is wrapped, never
	// modified. Nil means a pooled cleanhttp transport.
	HTTPClient *http.Client
	// Logger receives retry warnings. Nil discards them.
	Logger *slog.Logger
	// Clock drives waits and expiry; nil is the wall clock.
	Clock Clock
	// Retry bounds retries; zero fields take defaults.
	Retry RetryPolicy
	// TokenRefreshBefore is how long before expiry an installation token is replaced (default 5m).
	TokenRefreshBefore time.Duration
	// UserAgent is sent on every request (default "agentrunner").
	UserAgent string
}

// Client hands out go-github clients authenticated as an installation or with a static token. It
// is safe for concurrent use; installation tokens are cached per installation.
type Client struct {
	cfg     Config
	key     *rsa.PrivateKey
	clock   Clock
	log     *slog.Logger
	retryRT http.RoundTripper
	app     *gh.Client // JWT-authenticated; nil in token mode
	static  *gh.Client // token mode only

	mu            sync.Mutex
	tokens        map[int64]*tokenEntry
	installations map[int64]*Installation
}

type tokenEntry struct {
	mu      sync.Mutex // held while minting so concurrent callers make one request
	token   string
	expires time.Time
}

// NewClient checks cfg and builds a Client. It makes no request: bad credentials show up on the
// first call.
func NewClient(ctx context.Context, cfg Config) (*Client, error) {
	_ = ctx // reserved for future discovery calls; construction is offline today
	c := &Client{cfg: cfg, clock: cfg.Clock, log: cfg.Logger,
		tokens: map[int64]*tokenEntry{}, installations: map[int64]*Installation{}}
	if c.clock == nil {
		c.clock = RealClock{}
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.cfg.TokenRefreshBefore <= 0 {
		c.cfg.TokenRefreshBefore = 5 * time.Minute
	}
	if c.cfg.UserAgent == "" {
		c.cfg.UserAgent = "agentrunner"
	}
	isApp := cfg.AppID != 0 || len(cfg.PrivateKeyPEM) > 0
	switch {
	case isApp && cfg.Token != "":
		return nil, errors.New("github config: set either a token or a GitHub App (app id + private key), not both")
	case isApp && (cfg.AppID == 0 || len(cfg.PrivateKeyPEM) == 0):
		return nil, errors.New("github config: a GitHub App needs both an app id and a private key")
	case !isApp && cfg.Token == "":
		return nil, errors.New("github config: no credentials: set a token or a GitHub App id and private key")
	}
	base := http.RoundTripper(cleanhttp.DefaultPooledTransport())
	if cfg.HTTPClient != nil && cfg.HTTPClient.Transport != nil {
		base = cfg.HTTPClient.Transport
	}
	c.retryRT = newRetryTransport(base, cfg.Retry, c.clock, c.log)

	if isApp {
		key, err := jwt.ParseRSAPrivateKeyFromPEM(cfg.PrivateKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("github config: parse the app private key (PEM, RSA): %w", err)
		}
		c.key = key
		app, err := c.newREST(&jwtTransport{c: c, next: c.retryRT})
		if err != nil {
			return nil, err
		}
		c.app = app
		return c, nil
	}
	static, err := c.newREST(&bearerTransport{token: func(context.Context) (string, error) { return cfg.Token, nil }, next: c.retryRT})
	if err != nil {
		return nil, err
	}
	c.static = static
	return c, nil
}

func (c *Client) newREST(rt http.RoundTripper) (*gh.Client, error) {
	client := gh.NewClient(&http.Client{Transport: rt})
	client.UserAgent = c.cfg.UserAgent
	if c.cfg.BaseURL == "" {
		return client, nil
	}
	base := c.cfg.BaseURL
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	client, err := client.WithEnterpriseURLs(base, base)
	if err != nil {
		return nil, fmt.Errorf("github config: base URL %q: %w", c.cfg.BaseURL, err)
	}
	return client, nil
}

// IsApp reports whether the client authenticates as a GitHub App.
func (c *Client) IsApp() bool { return c.key != nil }

// App returns a client authenticated as the App itself (JWT), for /app and
// /repos/{owner}/{repo}/installation calls. It fails in token mode.
func (c *Client) App() (*gh.Client, error) {
	if c.app == nil {
		return nil, errors.New("github: App() needs GitHub App credentials; this client uses a static token")
	}
	return c.app, nil
}

// RepoInstallation finds the App's installation on owner/repo.
func (c *Client) RepoInstallation(ctx context.Context, owner, repo string) (int64, error) {
	app, err := c.App()
	if err != nil {
		return 0, err
	}
	inst, _, err := app.Apps.FindRepositoryInstallation(ctx, owner, repo)
	if err != nil {
		return 0, fmt.Errorf("find the GitHub App installation on %s/%s: %w", owner, repo, err)
	}
	return inst.GetID(), nil
}

// Installation returns the handle for an installation (0 means Config.InstallationID). In token
// mode the id is ignored and every handle uses the static token.
func (c *Client) Installation(id int64) *Installation {
	if id == 0 {
		id = c.cfg.InstallationID
	}
	if c.key == nil {
		id = 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if inst, ok := c.installations[id]; ok {
		return inst
	}
	inst := &Installation{c: c, id: id}
	if c.key == nil {
		inst.rest = c.static
	} else {
		// The error is impossible here: the same base URL already built c.app.
		inst.rest, _ = c.newREST(&bearerTransport{token: inst.token, next: c.retryRT})
	}
	c.installations[id] = inst
	return inst
}

// InstallationToken returns a token for installation id (0 means Config.InstallationID) and when it
// expires, minting one only when the cached token is within TokenRefreshBefore of expiry. In token
// mode it returns the static token and a zero time. The token is a credential: never log it.
func (c *Client) InstallationToken(ctx context.Context, id int64) (string, time.Time, error) {
	if c.key == nil {
		return c.cfg.Token, time.Time{}, nil
	}
	if id == 0 {
		id = c.cfg.InstallationID
	}
	if id == 0 {
		return "", time.Time{}, errors.New("github: no installation id (pass one or set Config.InstallationID)")
	}
	c.mu.Lock()
	e, ok := c.tokens[id]
	if !ok {
		e = &tokenEntry{}
		c.tokens[id] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.token != "" && c.clock.Now().Before(e.expires.Add(-c.cfg.TokenRefreshBefore)) {
		return e.token, e.expires, nil
	}
	// Empty options, not nil: go-github would send a JSON null, which GitHub's schema rejects.
	tok, _, err := c.app.Apps.CreateInstallationToken(ctx, id, &gh.InstallationTokenOptions{})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("mint an access token for GitHub App installation %d: %w", id, err)
	}
	if tok.GetToken() == "" {
		return "", time.Time{}, fmt.Errorf("mint an access token for GitHub App installation %d: empty token in response", id)
	}
	e.token, e.expires = tok.GetToken(), tok.GetExpiresAt().Time
	if e.expires.IsZero() {
		// GitHub always sends expires_at; without it assume the documented one hour.
		e.expires = c.clock.Now().Add(time.Hour)
	}
	return e.token, e.expires, nil
}

// appJWT signs the short-lived App JWT: iat 60 s in the past against clock skew, exp 9 minutes
// ahead (GitHub rejects more than 10).
func (c *Client) appJWT() (string, error) {
	now := c.clock.Now()
	claims := jwt.RegisteredClaims{
		Issuer:    strconv.FormatInt(c.cfg.AppID, 10),
		IssuedAt:  jwt.NewNumericDate(now.Add(-60 * time.Second)),
		ExpiresAt: jwt.NewNumericDate(now.Add(9 * time.Minute)),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(c.key)
	if err != nil {
		return "", fmt.Errorf("sign the GitHub App JWT: %w", err)
	}
	return s, nil
}

// Installation is one installation's view of GitHub (or the static token's).
type Installation struct {
	c    *Client
	id   int64
	rest *gh.Client
}

// ID is the installation id, 0 in token mode.
func (i *Installation) ID() int64 { return i.id }

// REST returns the go-github client for this installation. Tokens are minted lazily per request.
func (i *Installation) REST() *gh.Client { return i.rest }

// Token returns this installation's token and expiry; see Client.InstallationToken.
func (i *Installation) Token(ctx context.Context) (string, time.Time, error) {
	return i.c.InstallationToken(ctx, i.id)
}

func (i *Installation) token(ctx context.Context) (string, error) {
	t, _, err := i.Token(ctx)
	return t, err
}

// Permission returns user's role on owner/repo: "admin", "maintain", "write", "triage", "read" or
// "none" (also for a user who is not a collaborator). Use CanWrite to gate actions.
func (i *Installation) Permission(ctx context.Context, owner, repo, user string) (string, error) {
	// go-github v62 lacks role_name, which is the only field that tells maintain/triage apart.
	req, err := i.rest.NewRequest(http.MethodGet, fmt.Sprintf("repos/%s/%s/collaborators/%s/permission",
		url.PathEscape(owner), url.PathEscape(repo), url.PathEscape(user)), nil)
	if err != nil {
		return "", fmt.Errorf("read %s's permission on %s/%s: %w", user, owner, repo, err)
	}
	var lvl struct {
		Permission string `json:"permission"`
		RoleName   string `json:"role_name"`
	}
	resp, err := i.rest.Do(ctx, req, &lvl)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return "none", nil
		}
		return "", fmt.Errorf("read %s's permission on %s/%s: %w", user, owner, repo, err)
	}
	switch lvl.RoleName {
	case "admin", "maintain", "write", "triage", "read":
		return lvl.RoleName, nil
	}
	// A custom role's name says nothing by itself; the legacy field gives its base level.
	if lvl.Permission != "" {
		return lvl.Permission, nil
	}
	return "none", nil
}

// CanWrite reports whether a Permission result allows pushing: write, maintain or admin.
func CanWrite(permission string) bool {
	switch permission {
	case "write", "maintain", "admin":
		return true
	}
	return false
}

// bearerTransport sets the Authorization header from a token source.
type bearerTransport struct {
	token func(context.Context) (string, error)
	next  http.RoundTripper
}

func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.token(req.Context())
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+tok)
	return t.next.RoundTrip(req)
}

// jwtTransport authenticates as the App with a fresh JWT per request.
type jwtTransport struct {
	c    *Client
	next http.RoundTripper
}

func (t *jwtTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := t.c.appJWT()
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+tok)
	return t.next.RoundTrip(req)
}
