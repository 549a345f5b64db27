package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/agentrunner/agentrunner/overview"
	"github.com/agentrunner/agentrunner/store"
)

// Controller cancels and re-runs runs and cancels single jobs; the daemon implements it
// (through an adapter in cmd/runner).
type Controller interface {
	Cancel(ctx context.Context, runID, reason string) error
	// Rerun makes a new run of the same event and commit and returns its id.
	Rerun(ctx context.Context, runID string) (newRunID string, err error)
	// CancelJob stops one job of a run; the run goes on with its other jobs.
	CancelJob(ctx context.Context, runID, job, reason string) error
}

// LogStream serves a job's live log as Server-Sent Events (package livelog implements it).
type LogStream interface {
	ServeSSE(w http.ResponseWriter, r *http.Request, runID, job string)
}

// UI serves the control room under /ui/.
type UI struct {
	Store      store.Store
	Controller Controller
	// Logs follows a job's log live; nil: the job page has no live log.
	Logs LogStream
	// RunsDir is this daemon's run directory (<RunsDir>/<run>/...): run files are read there
	// first, then from the store. Empty: the store only.
	RunsDir string
	// PublicURL is where the daemon is reached; an https URL makes the cookie Secure.
	PublicURL string
	Logger    *slog.Logger
	// GitHub, when set, offers sign-in with GitHub and limits those sessions to the
	// repositories the account may read (and steer where it may write).
	GitHub *GitHubSignIn
	// Routines lists the repositories served and their routines (nil: no routines pages).
	Routines overview.ConfigSource
	// Dispatcher starts routines from the Run form (nil: no Run form).
	Dispatcher Dispatcher
}

//go:embed assets templates
var files embed.FS

var tmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"since": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05")
	},
	"statuses": func() []string {
		return []string{"", store.RunQueued, store.RunWaiting, store.RunRunning, store.RunCompleted}
	},
	"short": func(s string) string {
		if len(s) > 10 {
			return s[:10]
		}
		return s
	},
}).ParseFS(files, "templates/*.html"))

// Register adds the UI's routes to mux.
func (u *UI) Register(mux *http.ServeMux) {
	assets, _ := fs.Sub(files, "assets")
	mux.Handle("GET /ui/assets/", http.StripPrefix("/ui/assets/", assetHandler(http.FileServerFS(assets))))
	mux.HandleFunc("GET /favicon.ico", favicon)
	mux.HandleFunc("GET /ui/login", u.loginForm)
	mux.HandleFunc("POST /ui/login", u.login)
	mux.HandleFunc("POST /ui/logout", u.requireSession(store.ScopeRead, false, u.logout))
	mux.HandleFunc("GET /ui/{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/runs", http.StatusSeeOther) })
	mux.HandleFunc("GET /ui/runs", u.requireSession(store.ScopeRead, false, u.runs))
	mux.HandleFunc("GET /ui/runs.json", u.requireSession(store.ScopeRead, true, u.runsJSON))
	mux.HandleFunc("GET /ui/runs/{id}", u.requireSession(store.ScopeRead, false, u.run))
	mux.HandleFunc("GET /ui/runs/{id}/state", u.requireSession(store.ScopeRead, true, u.runState))
	mux.HandleFunc("GET /ui/runs/{id}/jobs/{job}", u.requireSession(store.ScopeRead, false, u.jobPage))
	mux.HandleFunc("POST /ui/runs/{id}/cancel", u.requireSession(store.ScopeDispatch, false, u.cancel))
	mux.HandleFunc("POST /ui/runs/{id}/rerun", u.requireSession(store.ScopeDispatch, false, u.rerun))
	mux.HandleFunc("POST /ui/runs/{id}/jobs/{job}/cancel", u.requireSession(store.ScopeDispatch, false, u.cancelJob))
	mux.HandleFunc("GET /ui/runs/{id}/jobs/{job}/log", u.requireSession(store.ScopeRead, true, u.jobLog))
	mux.HandleFunc("GET /ui/review", u.requireSession(store.ScopeRead, false, u.review))
	u.registerGitHub(mux)
	mux.HandleFunc("GET /ui/routines", u.requireSession(store.ScopeRead, false, u.routinesPage))
	mux.HandleFunc("GET /ui/repos/{owner}/{repo}", u.requireSession(store.ScopeRead, false, u.repoPage))
	mux.HandleFunc("POST /ui/repos/{owner}/{repo}/routines/{routine}/dispatch", u.requireSession(store.ScopeDispatch, false, u.dispatch))
}

func assetHandler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w)
		w.Header().Set("Cache-Control", "public, max-age=300")
		h.ServeHTTP(w, r)
	})
}

func (u *UI) log() *slog.Logger {
	if u.Logger != nil {
		return u.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// render executes a page into a buffer first, so a template error never sends half a page.
func (u *UI) render(w http.ResponseWriter, code int, name string, data any) {
	var buf bytes.Buffer
	if err := tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		u.log().Error("render page", "page", name, "err", err)
		http.Error(w, "the page could not be made", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}

func (u *UI) cancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	se, _ := sessionFrom(r.Context())
	if err := u.Controller.Cancel(r.Context(), id, "cancelled from the web UI by "+se.Who); err != nil {
		u.controlFailed(w, "cancel", err)
		return
	}
	http.Redirect(w, r, "/ui/runs/"+url.PathEscape(id), http.StatusSeeOther)
}

func (u *UI) rerun(w http.ResponseWriter, r *http.Request) {
	id, err := u.Controller.Rerun(r.Context(), r.PathValue("id"))
	if err != nil {
		u.controlFailed(w, "re-run", err)
		return
	}
	http.Redirect(w, r, "/ui/runs/"+url.PathEscape(id), http.StatusSeeOther)
}

func (u *UI) controlFailed(w http.ResponseWriter, what string, err error) {
	code := http.StatusServiceUnavailable
	var st interface{ HTTPStatus() int }
	if errors.As(err, &st) {
		code = st.HTTPStatus()
	}
	http.Error(w, what+" failed: "+err.Error(), code)
}

func (u *UI) jobLog(w http.ResponseWriter, r *http.Request) {
	if u.Logs == nil {
		http.Error(w, "live logs are not available on this daemon", http.StatusNotFound)
		return
	}
	u.Logs.ServeSSE(w, r, r.PathValue("id"), r.PathValue("job"))
}
