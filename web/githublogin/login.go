// Package githublogin signs people in to the control room with their GitHub account, through
// the configured GitHub App's OAuth web flow (with PKCE), and answers what a signed-in person
// may do on a repository from the role GitHub gives them there.
//
// The person's own GitHub token is used once, to learn who signed in, and then dropped: roles
// are read with the App's installation token, so the daemon never holds a credential that acts
// as the person.
package githublogin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	gh "github.com/google/go-github/v62/github"
	"golang.org/x/oauth2"
)

// Config is what the flow needs from runner.yaml's GitHub App section and the daemon.
type Config struct {
	// ClientID and ClientSecret are the GitHub App's OAuth credentials (its settings page).
	ClientID, ClientSecret string
	// WebURL is GitHub's web root, where /login/oauth/* lives: https://github.com, or a
	// GitHub Enterprise Server's root.
	WebURL string
	// APIURL is the REST root: https://api.github.com/ or https://HOST/api/v3/.
	APIURL string
	// CallbackURL is <public-url>/ui/login/github/callback; it must be a callback URL
	// registered with the App.
	CallbackURL string
	// Key signs the short-lived cookie that carries the flow's state between the two legs.
	Key []byte
	// HTTPClient reaches GitHub (nil: http.DefaultClient).
	HTTPClient *http.Client
}

// Identity is who signed in.
type Identity struct {
	Login string
	ID    int64
}

// ErrDeclined is returned when the person declined to authorize the App on GitHub.
var ErrDeclined = errors.New("GitHub sign-in was declined")

// flowCookie carries state, verifier and destination between Begin and Finish. Its path keeps
// it off every other request.
const (
	flowCookie     = "agentrunner_github_login"
	flowCookiePath = "/ui/login/github"
	flowTTL        = 10 * time.Minute
)

// Flow runs the web flow.
type Flow struct {
	cfg   Config
	oauth oauth2.Config
	now   func() time.Time
}

// New checks cfg and returns a flow.
func New(cfg Config) (*Flow, error) {
	var missing []string
	for name, v := range map[string]string{"client id": cfg.ClientID, "client secret": cfg.ClientSecret,
		"web URL": cfg.WebURL, "API URL": cfg.APIURL, "callback URL": cfg.CallbackURL} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("GitHub sign-in: no %s configured", strings.Join(missing, ", "))
	}
	if len(cfg.Key) < 16 {
		return nil, errors.New("GitHub sign-in: the state key must be at least 16 bytes")
	}
	for name, v := range map[string]string{"web URL": cfg.WebURL, "API URL": cfg.APIURL, "callback URL": cfg.CallbackURL} {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("GitHub sign-in: %s %q is not an absolute http(s) URL", name, v)
		}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	web := strings.TrimSuffix(cfg.WebURL, "/")
	return &Flow{cfg: cfg, now: time.Now, oauth: oauth2.Config{
		ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.CallbackURL,
		Endpoint: oauth2.Endpoint{AuthURL: web + "/login/oauth/authorize", TokenURL: web + "/login/oauth/access_token",
			AuthStyle: oauth2.AuthStyleInParams},
	}}, nil
}

type flowState struct {
	State    string    `json:"s"`
	Verifier string    `json:"v"`
	Next     string    `json:"n"`
	Expires  time.Time `json:"e"`
}

// Begin sends the browser to GitHub's authorize page; after sign-in Finish brings it back to
// next (a path on this site; anything else becomes "/ui/").
func (f *Flow) Begin(w http.ResponseWriter, r *http.Request, next string) {
	st := flowState{State: randomString(), Verifier: oauth2.GenerateVerifier(), Next: LocalPath(next),
		Expires: f.now().Add(flowTTL)}
	raw, _ := json.Marshal(st)
	value := base64.RawURLEncoding.EncodeToString(raw)
	http.SetCookie(w, &http.Cookie{Name: flowCookie, Value: value + "." + f.sign(value), Path: flowCookiePath,
		MaxAge: int(flowTTL / time.Second), HttpOnly: true, Secure: f.secure(),
		// Lax, not Strict: the callback is a top-level navigation from GitHub, and a Strict
		// cookie would not come with it.
		SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, f.oauth.AuthCodeURL(st.State, oauth2.S256ChallengeOption(st.Verifier)), http.StatusFound)
}

// Finish completes the flow on the callback request: it checks the state against the flow's
// cookie, trades the code for the person's token, asks GitHub who that is, and returns them
// with the path Begin was given.
func (f *Flow) Finish(w http.ResponseWriter, r *http.Request) (Identity, string, error) {
	st, err := f.readState(r)
	// The cookie is single-use whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: flowCookie, Path: flowCookiePath, MaxAge: -1, HttpOnly: true,
		Secure: f.secure(), SameSite: http.SameSiteLaxMode})
	if err != nil {
		return Identity{}, "", err
	}
	q := r.URL.Query()
	if !hmac.Equal([]byte(q.Get("state")), []byte(st.State)) {
		return Identity{}, "", errors.New("GitHub sign-in: the state does not match this browser's sign-in; start again")
	}
	if e := q.Get("error"); e != "" {
		if e == "access_denied" {
			return Identity{}, "", ErrDeclined
		}
		return Identity{}, "", fmt.Errorf("GitHub sign-in failed: %s", clip(e+": "+q.Get("error_description")))
	}
	code := q.Get("code")
	if code == "" {
		return Identity{}, "", errors.New("GitHub sign-in: GitHub sent no code")
	}
	ctx := context.WithValue(r.Context(), oauth2.HTTPClient, f.cfg.HTTPClient)
	tok, err := f.oauth.Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			return Identity{}, "", fmt.Errorf("GitHub sign-in: GitHub refused the code: %s", clip(re.ErrorCode+": "+re.ErrorDescription))
		}
		return Identity{}, "", fmt.Errorf("GitHub sign-in: trade the code for a token: %w", err)
	}
	who, err := f.whoami(r.Context(), tok.AccessToken)
	if err != nil {
		return Identity{}, "", err
	}
	return who, st.Next, nil
}

func (f *Flow) whoami(ctx context.Context, token string) (Identity, error) {
	c := gh.NewClient(f.cfg.HTTPClient).WithAuthToken(token)
	if !strings.HasPrefix(f.cfg.APIURL, "https://api.github.com") {
		var err error
		if c, err = c.WithEnterpriseURLs(f.cfg.APIURL, f.cfg.APIURL); err != nil {
			return Identity{}, fmt.Errorf("GitHub sign-in: API URL: %w", err)
		}
	}
	u, _, err := c.Users.Get(ctx, "")
	if err != nil {
		return Identity{}, fmt.Errorf("GitHub sign-in: ask GitHub who signed in: %w", err)
	}
	if u.GetLogin() == "" {
		return Identity{}, errors.New("GitHub sign-in: GitHub named no user")
	}
	return Identity{Login: u.GetLogin(), ID: u.GetID()}, nil
}

func (f *Flow) readState(r *http.Request) (flowState, error) {
	var st flowState
	c, err := r.Cookie(flowCookie)
	if err != nil {
		return st, errors.New("GitHub sign-in: this browser has no sign-in in progress (cookies off, or it took longer than 10 minutes); start again")
	}
	value, sig, ok := strings.Cut(c.Value, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(f.sign(value))) {
		return st, errors.New("GitHub sign-in: the sign-in cookie is not one this daemon made; start again")
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || json.Unmarshal(raw, &st) != nil {
		return st, errors.New("GitHub sign-in: the sign-in cookie is unreadable; start again")
	}
	if !f.now().Before(st.Expires) {
		return st, errors.New("GitHub sign-in took longer than 10 minutes; start again")
	}
	return st, nil
}

func (f *Flow) sign(value string) string {
	m := hmac.New(sha256.New, f.cfg.Key)
	m.Write([]byte("github-login\x00" + value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (f *Flow) secure() bool { return strings.HasPrefix(f.cfg.CallbackURL, "https://") }

// LocalPath returns p when it is a path on this site, else "/ui/": a sign-in must not become
// an open redirect to another host ("//evil", "/\evil", "https://evil").
func LocalPath(p string) string {
	u, err := url.Parse(p)
	if err != nil || p == "" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") ||
		strings.ContainsAny(p, "\\\r\n\t") || u.Scheme != "" || u.Host != "" {
		return "/ui/"
	}
	return p
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux; it panics if it ever could not
	return base64.RawURLEncoding.EncodeToString(b)
}

// clip bounds text that came from the network before it reaches a page or a log.
func clip(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
