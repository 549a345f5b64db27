package web

import (
	"errors"
	"net/http"
	"time"

	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/web/githublogin"
)

// GitHubSignIn offers "Sign in with GitHub" next to the token form: the GitHub App's OAuth web
// flow, and the roles that then decide what each signed-in account sees and steers.
type GitHubSignIn struct {
	Flow  *githublogin.Flow
	Roles RepoRoles
}

// githubScope is the scope of a GitHub session. It lets the account through the routes a
// dispatch token may use; each of them then asks the account's role on the run's repository
// (access.go), so the scope alone grants nothing. Admin routes stay closed to GitHub sessions.
const githubScope = store.ScopeDispatch

// registerGitHub adds the two legs of GitHub sign-in when it is configured.
func (u *UI) registerGitHub(mux *http.ServeMux) {
	if u.GitHub == nil {
		return
	}
	mux.HandleFunc("GET /ui/login/github", u.githubBegin)
	mux.HandleFunc("GET /ui/login/github/callback", u.githubCallback)
}

func (u *UI) githubBegin(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w)
	u.GitHub.Flow.Begin(w, r, safeNext(r.URL.Query().Get("next")))
}

// githubCallback finishes the flow and makes a session for the GitHub account.
func (u *UI) githubCallback(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w)
	who, next, err := u.GitHub.Flow.Finish(w, r)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, githublogin.ErrDeclined) {
			code = http.StatusForbidden
		}
		u.log().Info("GitHub sign-in refused", "err", err)
		// The message may quote GitHub's error text; the template escapes it.
		u.render(w, code, "login", map[string]any{"Next": "/ui/runs", "GitHub": true, "Error": err.Error()})
		return
	}
	exp := time.Now().Add(SessionTTL)
	id, err := u.Store.CreateSession(r.Context(), store.Session{Who: who.Login, Scope: githubScope,
		GitHubLogin: who.Login, ExpiresAt: exp})
	if err != nil {
		u.log().Error("GitHub sign-in: create session", "err", err)
		http.Error(w, "cannot sign in now; try again shortly", http.StatusServiceUnavailable)
		return
	}
	u.log().Info("signed in with GitHub", "login", who.Login)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: id, Path: "/", Expires: exp, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: u.secure()})
	// A page that moves on by itself rather than a redirect: this request came from GitHub, and
	// browsers withhold SameSite=Strict cookies on every hop of a redirect chain that began on
	// another site, so a redirect would arrive without the new session. The page's own
	// navigation starts on this site and carries it.
	u.render(w, http.StatusOK, "signedin", map[string]any{"Who": who.Login, "Next": safeNext(next)})
}
