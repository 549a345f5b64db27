package githubfake

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The web application flow lives on GitHub's web host, not in the REST description, so the fake
// checks it against the documented parameters instead ("Generating a user access token for a
// GitHub App": GET /login/oauth/authorize, POST /login/oauth/access_token). Like GitHub, the
// token endpoint answers form-encoded unless the client asks for JSON, reports a bad code with
// status 200 and an error field, and takes each code once, for ten minutes, with the
// redirect_uri and PKCE verifier of its authorize request.

// oauthApp is a registered OAuth client (a GitHub App's client id and secret).
type oauthApp struct {
	secret   string
	callback string
}

// oauthCode is an authorization code handed to the browser, not yet exchanged.
type oauthCode struct {
	clientID, login, redirectURI, challenge string
	expires                                 time.Time
}

// AddOAuthApp registers a GitHub App's OAuth client: its client id, secret and the callback URL
// registered with it.
func (f *Fake) AddOAuthApp(clientID, clientSecret, callbackURL string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.oauthApps == nil {
		f.oauthApps = map[string]oauthApp{}
	}
	f.oauthApps[clientID] = oauthApp{secret: clientSecret, callback: callbackURL}
}

// SignIn makes login the person in front of GitHub's authorize page: from now on the page
// approves at once as that user. An empty login makes the person decline (access_denied).
func (f *Fake) SignIn(login string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.browserUser = login
}

// WebURL is the root of the fake's web host (https://github.com for github.com): the OAuth
// pages live under it.
func (f *Fake) WebURL() string { return f.srv.URL }

// serveOAuth answers the web flow's two endpoints; everything else under /login/oauth is a
// violation.
func (f *Fake) serveOAuth(w http.ResponseWriter, r *http.Request, rec *Request) {
	switch {
	case r.Method == http.MethodGet && rec.Path == "/login/oauth/authorize":
		f.authorize(w, r, rec)
	case r.Method == http.MethodPost && rec.Path == "/login/oauth/access_token":
		f.accessToken(w, r, rec)
	default:
		f.violation(rec, fmt.Sprintf("%s %s: not an endpoint of GitHub's OAuth web flow", r.Method, rec.Path))
		f.finish(w, rec, http.StatusNotFound, nil, errBody("Not Found"))
	}
}

func (f *Fake) authorize(w http.ResponseWriter, r *http.Request, rec *Request) {
	q := r.URL.Query()
	var problems []string
	for k := range q {
		switch k {
		case "response_type": // standard OAuth 2.0; GitHub takes "code" only
			if q.Get(k) != "code" {
				problems = append(problems, "response_type must be code")
			}
		case "client_id", "redirect_uri", "login", "scope", "state", "allow_signup", "prompt", "code_challenge", "code_challenge_method":
		default:
			problems = append(problems, "unknown parameter "+k)
		}
	}
	f.mu.Lock()
	app, known := f.oauthApps[q.Get("client_id")]
	login := f.browserUser
	f.mu.Unlock()
	if !known {
		problems = append(problems, fmt.Sprintf("client_id %q is not a registered app", q.Get("client_id")))
	}
	redirect := q.Get("redirect_uri")
	if redirect == "" {
		redirect = app.callback
	}
	if known && redirect != app.callback {
		problems = append(problems, fmt.Sprintf("redirect_uri %q is not the app's callback URL %q", redirect, app.callback))
	}
	if q.Get("state") == "" {
		problems = append(problems, "no state: GitHub strongly recommends one against forgery, and agentrunner must send it")
	}
	challenge := q.Get("code_challenge")
	if challenge != "" && q.Get("code_challenge_method") != "S256" {
		problems = append(problems, "code_challenge_method must be S256")
	}
	if len(problems) > 0 {
		f.violation(rec, "GET /login/oauth/authorize: "+strings.Join(problems, "; "))
		f.finish(w, rec, http.StatusBadRequest, nil, errBody("Bad Request"))
		return
	}
	back, err := url.Parse(redirect)
	if err != nil {
		f.violation(rec, "GET /login/oauth/authorize: redirect_uri: "+err.Error())
		f.finish(w, rec, http.StatusBadRequest, nil, errBody("Bad Request"))
		return
	}
	out := back.Query()
	out.Set("state", q.Get("state"))
	if login == "" {
		out.Set("error", "access_denied")
		out.Set("error_description", "The user has denied your application access.")
	} else {
		code := fmt.Sprintf("fakecode%d", f.nextCode())
		f.mu.Lock()
		if f.oauthCodes == nil {
			f.oauthCodes = map[string]oauthCode{}
		}
		f.oauthCodes[code] = oauthCode{clientID: q.Get("client_id"), login: login, redirectURI: q.Get("redirect_uri"),
			challenge: challenge, expires: f.clock.Now().Add(10 * time.Minute)}
		f.mu.Unlock()
		out.Set("code", code)
	}
	back.RawQuery = out.Encode()
	f.finish(w, rec, http.StatusFound, map[string]string{"Location": back.String()}, nil)
}

func (f *Fake) nextCode() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.id()
}

func (f *Fake) accessToken(w http.ResponseWriter, r *http.Request, rec *Request) {
	form, err := url.ParseQuery(string(rec.Body))
	if err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		f.violation(rec, "POST /login/oauth/access_token: the body must be form-encoded parameters")
		f.finish(w, rec, http.StatusBadRequest, nil, errBody("Bad Request"))
		return
	}
	// x/oauth2 may send the client's credentials as HTTP Basic auth instead of in the form;
	// GitHub takes both.
	id, secret := form.Get("client_id"), form.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, secret = u, p
	}
	answer := func(v url.Values) {
		if strings.Contains(r.Header.Get("Accept"), "application/json") {
			m := map[string]any{}
			for k := range v {
				m[k] = v.Get(k)
			}
			f.finish(w, rec, http.StatusOK, nil, mustJSON(m))
			return
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		f.finish(w, rec, http.StatusOK, nil, []byte(v.Encode()))
	}
	fail := func(code, desc string) {
		answer(url.Values{"error": {code}, "error_description": {desc},
			"error_uri": {"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"}})
	}

	f.mu.Lock()
	app, known := f.oauthApps[id]
	c, found := f.oauthCodes[form.Get("code")]
	delete(f.oauthCodes, form.Get("code")) // a code is good for one exchange, right or wrong
	now := f.clock.Now()
	f.mu.Unlock()
	switch {
	case !known || subtle.ConstantTimeCompare([]byte(secret), []byte(app.secret)) != 1:
		fail("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
		return
	case !found || c.clientID != id || !now.Before(c.expires):
		fail("bad_verification_code", "The code passed is incorrect or expired.")
		return
	case c.redirectURI != "" && form.Get("redirect_uri") != c.redirectURI:
		fail("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.")
		return
	case c.challenge != "" && pkceChallenge(form.Get("code_verifier")) != c.challenge:
		fail("bad_verification_code", "The code_verifier does not match the code_challenge.")
		return
	}
	f.mu.Lock()
	tok := fmt.Sprintf("ghu_fake%d", f.id())
	if f.userTokens == nil {
		f.userTokens = map[string]issuedUserToken{}
	}
	f.userTokens[tok] = issuedUserToken{login: c.login, expires: now.Add(8 * time.Hour)}
	f.mu.Unlock()
	answer(url.Values{"access_token": {tok}, "expires_in": {"28800"}, "refresh_token": {"ghr_fake" + tok[8:]},
		"refresh_token_expires_in": {"15897600"}, "scope": {""}, "token_type": {"bearer"}})
}

// issuedUserToken is a user access token the web flow minted.
type issuedUserToken struct {
	login   string
	expires time.Time
}

// authenticatedUser answers GET /user for a user access token.
func (f *Fake) authenticatedUser(r *http.Request) (int, response) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "token "); ok {
		tok = t
	}
	f.mu.Lock()
	ut, ok := f.userTokens[tok]
	now := f.clock.Now()
	f.mu.Unlock()
	if !ok || !now.Before(ut.expires) {
		return http.StatusUnauthorized, response{body: errBody("Bad credentials")}
	}
	u := f.user(ut.login)
	u["id"] = userID(ut.login)
	u["node_id"] = nodeID("U", userID(ut.login))
	for k, v := range map[string]any{
		"avatar_url": "https://avatars.githubusercontent.com/u/1", "gravatar_id": "",
		"followers_url": "", "following_url": "", "gists_url": "", "starred_url": "",
		"subscriptions_url": "", "organizations_url": "", "repos_url": "", "events_url": "",
		"received_events_url": "", "site_admin": false, "name": nil, "company": nil, "blog": "",
		"location": nil, "email": nil, "hireable": nil, "bio": nil, "public_repos": 0,
		"public_gists": 0, "followers": 0, "following": 0,
		"created_at": "2020-01-01T00:00:00Z", "updated_at": "2020-01-01T00:00:00Z",
	} {
		u[k] = v
	}
	return http.StatusOK, response{body: mustJSON(u)}
}

// userID gives each login a stable id, so tests can tell people apart by id as GitHub does.
func userID(login string) int64 {
	var id int64 = 1000
	for _, c := range login {
		id = id*31 + int64(c)
	}
	if id < 0 {
		id = -id
	}
	return id%1_000_000_000 + 1
}

func pkceChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
