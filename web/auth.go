// Package web is the daemon's control room: server-rendered pages to sign in with an API
// token, list runs, read a run and cancel or re-run it. It owns the browser sessions' cookie,
// CSRF protection and security headers; it knows nothing of how runs are executed (the
// Controller does that) nor how Markdown and patches are rendered (web/render).
package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/web/githublogin"
)

// CookieName is the session cookie's name.
const CookieName = "agentrunner_session"

// SessionTTL is how long a sign-in lasts at most (the token's own expiry may end it sooner).
const SessionTTL = 12 * time.Hour

type ctxKey struct{}

// session is a request's signed-in browser.
type session struct {
	id string
	store.Session
}

// csrfToken is the per-session CSRF token: derived from the session id, which only the
// signed-in browser knows, so nothing more is stored and no other site can compute it.
func (s session) csrfToken() string {
	sum := sha256.Sum256([]byte("agentrunner csrf\x00" + s.id))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func sessionFrom(ctx context.Context) (session, bool) {
	s, ok := ctx.Value(ctxKey{}).(session)
	return s, ok
}

// requireSession lets a request through when it carries a live session with scope need.
// Without one, pages redirect to the login form and JSON answers 401; with too small a scope
// the answer is 403. State-changing requests must also pass sameOrigin and carry the CSRF
// token (form field csrf or header X-CSRF-Token).
func (u *UI) requireSession(need store.Scope, json bool, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w)
		var se session
		if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
			s, err := u.Store.CheckSession(r.Context(), c.Value)
			switch {
			case err == nil:
				se = session{id: c.Value, Session: s}
			case !errors.Is(err, store.ErrNotFound):
				u.log().Error("check session", "err", err)
				http.Error(w, "cannot check the session now; try again shortly", http.StatusServiceUnavailable)
				return
			}
		}
		if se.id == "" {
			if json {
				http.Error(w, `{"error":"sign in at /ui/login"}`, http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !sameOrigin(r) {
				http.Error(w, "cross-site request refused", http.StatusForbidden)
				return
			}
			got := r.Header.Get("X-CSRF-Token")
			if got == "" {
				got = r.PostFormValue("csrf")
			}
			if subtle.ConstantTimeCompare([]byte(got), []byte(se.csrfToken())) != 1 {
				http.Error(w, "missing or wrong CSRF token; reload the page", http.StatusForbidden)
				return
			}
		}
		if !se.Scope.Allows(need) {
			http.Error(w, "signed in as "+se.Who+" with scope "+string(se.Scope)+"; this needs scope "+string(need), http.StatusForbidden)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, se))
		if se.GitHubLogin != "" && !u.githubGate(w, r, need) {
			return
		}
		next(w, r)
	}
}

// sameOrigin refuses what a browser says came from another site: Sec-Fetch-Site when sent,
// else the Origin header against the request's host.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return false
	case "same-origin":
		// The browser vouches for it (no page can set Sec-Fetch-*). Needed because our own
		// Referrer-Policy: no-referrer makes Chromium send "Origin: null" on the UI's own
		// form posts (the Fetch standard's origin serialization), which alone looks foreign.
		return true
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		// Browsers send Origin on every POST; its absence means a non-browser client, which
		// still needs the session cookie and the CSRF token.
		return o == ""
	}
	ou, err := url.Parse(o)
	return err == nil && strings.EqualFold(ou.Host, r.Host)
}

func (u *UI) loginForm(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w)
	u.render(w, http.StatusOK, "login", map[string]any{"Next": safeNext(r.URL.Query().Get("next")), "GitHub": u.GitHub != nil})
}

func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w)
	if !sameOrigin(r) {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	next := safeNext(r.PostFormValue("next"))
	tok, err := u.Store.CheckToken(r.Context(), strings.TrimSpace(r.PostFormValue("token")))
	if err != nil {
		msg := "Unknown or revoked token."
		if errors.Is(err, store.ErrTokenExpired) {
			msg = "That token has expired."
		} else if !errors.Is(err, store.ErrNotFound) {
			u.log().Error("login: check token", "err", err)
			msg = "The token cannot be checked now; try again shortly."
		}
		u.render(w, http.StatusUnauthorized, "login", map[string]any{"Next": next, "Error": msg, "GitHub": u.GitHub != nil})
		return
	}
	exp := time.Now().Add(SessionTTL)
	if !tok.ExpiresAt.IsZero() && tok.ExpiresAt.Before(exp) {
		exp = tok.ExpiresAt
	}
	id, err := u.Store.CreateSession(r.Context(), store.Session{Who: tok.Name, Scope: tok.Scope, TokenName: tok.Name, ExpiresAt: exp})
	if err != nil {
		u.log().Error("login: create session", "err", err)
		http.Error(w, "cannot sign in now; try again shortly", http.StatusServiceUnavailable)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: id, Path: "/", Expires: exp, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: u.secure()})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	se, _ := sessionFrom(r.Context())
	if err := u.Store.DeleteSession(r.Context(), se.id); err != nil {
		u.log().Error("logout", "err", err)
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: u.secure()})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect on this site and in the UI; githublogin.LocalPath is
// the one check for "a path on this site", shared by both ways of signing in.
func safeNext(n string) string {
	if !strings.HasPrefix(n, "/ui/") || githublogin.LocalPath(n) != n {
		return "/ui/runs"
	}
	return n
}

func (u *UI) secure() bool { return strings.HasPrefix(u.PublicURL, "https://") }

// setSecurityHeaders: only this site's own script and style, no framing, no referrer.
func setSecurityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "private, no-store")
}
