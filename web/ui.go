package web

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/agentrunner/agentrunner/store"
)

// Controller cancels and re-runs runs; *daemon.Daemon implements it.
type Controller interface {
	Cancel(ctx context.Context, runID, reason string) error
	Rerun(ctx context.Context, runID string) (newRunID string, err error)
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
	// PublicURL is where the daemon is reached; an https URL makes the cookie Secure.
	PublicURL string
	Logger    *slog.Logger
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
	mux.HandleFunc("POST /ui/runs/{id}/cancel", u.requireSession(store.ScopeDispatch, false, u.cancel))
	mux.HandleFunc("POST /ui/runs/{id}/rerun", u.requireSession(store.ScopeDispatch, false, u.rerun))
	mux.HandleFunc("GET /ui/runs/{id}/jobs/{job}/log", u.requireSession(store.ScopeRead, true, u.jobLog))
	mux.HandleFunc("GET /ui/review", u.requireSession(store.ScopeRead, false, u.review))
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

func (u *UI) run(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	run, err := u.Store.GetRun(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "no such run", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "cannot read the run now", http.StatusServiceUnavailable)
		return
	}
	var jobs []struct {
		ID      string `json:"id"`
		Agent   string `json:"agent"`
		Outcome string `json:"outcome"`
		Error   string `json:"error"`
	}
	if run.Status == store.RunCompleted {
		if b, err := u.Store.RunFile(r.Context(), id, "result.json"); err == nil {
			var res struct {
				Jobs json.RawMessage `json:"jobs"`
			}
			if json.Unmarshal(b, &res) == nil {
				_ = json.Unmarshal(res.Jobs, &jobs)
			}
		}
	}
	report, _ := u.Store.RunFile(r.Context(), id, "report.md")
	patch, _ := u.Store.RunFile(r.Context(), id, "patch.diff")
	se, _ := sessionFrom(r.Context())
	u.render(w, http.StatusOK, "run", map[string]any{"Session": se.Session, "CSRF": se.csrfToken(),
		"Run": run, "Jobs": jobs, "Report": string(report), "Patch": string(patch),
		"CanControl": se.Scope.Allows(store.ScopeDispatch)})
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
