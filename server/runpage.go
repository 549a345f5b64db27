package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentrunner/agentrunner/internal/termsafe"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
)

// RunPageKeyName names the store key (store.Store.Key) that signs run page links: one per
// database, so a link made by one daemon of a fleet opens on every other.
const RunPageKeyName = "run-page"

// maxPageReport bounds the report a run page shows; the API serves the whole run.
const maxPageReport = 1 << 20

//go:embed page/run.html page/run.css
var pageFiles embed.FS

var (
	runCSS  = mustRead("page/run.css")
	runTmpl = template.Must(template.New("run.html").ParseFS(pageFiles, "page/run.html"))
	// runPageCSP lets the page's one inline style sheet in by its hash and nothing else: no
	// script, image, frame, form or connection, whatever an agent's report holds.
	runPageCSP = "default-src 'none'; style-src '" + cspHash(runCSS) + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

func mustRead(name string) string {
	b, err := pageFiles.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time: cannot happen
	}
	return string(b)
}

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// RunPage serves a run's summary page at GET /runs/{id}?k=<capability>, without an API token:
// it is what a check run, pull request or comment links to, and whoever can read those may
// read it. The capability (an HMAC of the run id with the store's run-page key) makes the
// link unguessable: without a valid one the answer is 404, the same as for a run that does
// not exist. The page shows the run, its agents' outcomes and its report; everything an agent
// wrote is escaped by html/template and shown as text, under a Content-Security-Policy that
// allows no script at all.
type RunPage struct {
	Store store.Store
	// RunsDir holds the run files of runs this daemon ran (see API.RunsDir).
	RunsDir string
	// Key signs the links (store.Store.Key(ctx, RunPageKeyName)).
	Key    []byte
	Logger *slog.Logger
}

// RunPagePath is where run pages are served: RunPagePath + run id.
const RunPagePath = "/runs/"

// Register adds the page's route to mux.
func (p *RunPage) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+RunPagePath+"{id}", p.serve)
}

// Capability is the k parameter of run id's page link.
func (p *RunPage) Capability(runID string) string {
	m := hmac.New(sha256.New, p.Key)
	m.Write([]byte("agentrunner run page\x00" + runID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// URL is the link to run id's page on the daemon at base (its public URL).
func (p *RunPage) URL(base, runID string) string {
	return strings.TrimRight(base, "/") + RunPagePath + url.PathEscape(runID) + "?k=" + p.Capability(runID)
}

func (p *RunPage) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", runPageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	// The capability is in the URL: it must not leave in a Referer, nor stay in a shared cache.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "private, no-cache")
	h.Set("X-Frame-Options", "DENY")
	id := r.PathValue("id")
	k := r.URL.Query().Get("k")
	if len(p.Key) == 0 || k == "" || !hmac.Equal([]byte(k), []byte(p.Capability(id))) {
		pageNotFound(w)
		return
	}
	run, err := p.Store.GetRun(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		pageNotFound(w)
		return
	}
	if err != nil {
		p.log().Error("run page", "run_id", id, "err", err)
		http.Error(w, "the run cannot be read now; try again shortly", http.StatusServiceUnavailable)
		return
	}
	var buf bytes.Buffer
	if err := runTmpl.Execute(&buf, p.view(r.Context(), run)); err != nil {
		p.log().Error("run page", "run_id", id, "err", err)
		http.Error(w, "the page could not be made", http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

func pageNotFound(w http.ResponseWriter) {
	http.Error(w, "404 page not found", http.StatusNotFound)
}

func (p *RunPage) log() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// runPageView is what the page template shows. Every string is already safe for a person to
// read (termsafe: no terminal escapes, bidi overrides or invalid UTF-8); html/template
// escapes it for HTML.
type runPageView struct {
	CSS                                 template.CSS
	Live                                bool
	ID, Repo, Routine, Trigger, SHA     string
	ShortSHA, Status, StatusText, Error string
	Created, Started, Finished, Took    string
	// UIPath is the run's page in the control room (web.RunURL's path), which needs a sign-in.
	UIPath    string
	Jobs      []jobPageView
	Report    string
	ReportCut int
}

type jobPageView struct {
	ID, Agent, Outcome, Duration, Error, Blocked string
	// LogTail is the end of the log of a job that did not succeed, where its failure shows.
	LogTail string
}

func (p *RunPage) view(ctx context.Context, run store.Run) runPageView {
	v := runPageView{CSS: template.CSS(runCSS), Live: run.Status != store.RunCompleted,
		ID: termsafe.Line(run.ID), Repo: termsafe.Line(run.Repo), Routine: termsafe.Line(run.Routine),
		Trigger: termsafe.Line(run.EventKind), SHA: termsafe.Line(run.SHA), Status: cssWord(run.Status),
		StatusText: termsafe.Line(run.Status), Error: termsafe.Line(run.Error),
		Created: stamp(run.CreatedAt), Started: stamp(run.StartedAt), Finished: stamp(run.FinishedAt),
		UIPath: "/ui/runs/" + url.PathEscape(run.ID)}
	v.ShortSHA = v.SHA
	if len(v.ShortSHA) > 12 {
		v.ShortSHA = v.ShortSHA[:12]
	}
	if run.Conclusion != "" {
		v.Status = cssWord(run.Conclusion)
		v.StatusText += " · " + termsafe.Line(run.Conclusion)
	}
	if !run.StartedAt.IsZero() && !run.FinishedAt.IsZero() {
		v.Took = run.FinishedAt.Sub(run.StartedAt).Round(time.Second).String()
	}
	if v.Live {
		// A rerun's earlier files may still be in the run directory: only a finished run's
		// result is its own.
		return v
	}
	var res result.Run
	if b, err := readRunFile(ctx, p.Store, p.RunsDir, run.ID, "result.json"); err == nil && json.Unmarshal(b, &res) == nil {
		for _, j := range res.Jobs {
			if j == nil {
				continue
			}
			jv := jobPageView{ID: termsafe.Line(j.ID), Agent: termsafe.Line(j.Agent), Outcome: cssWord(string(j.Outcome)),
				Error: termsafe.Line(j.Error), Blocked: termsafe.Line(strings.Join(j.Blocked, ", "))}
			if j.Outcome != result.Success && j.Outcome != result.Skipped {
				jv.LogTail = termsafe.Text(j.LogTail)
			}
			if d := j.Duration(); d > 0 {
				jv.Duration = d.Round(100 * time.Millisecond).String()
			}
			v.Jobs = append(v.Jobs, jv)
		}
		v.Report = res.Report
	}
	if b, err := readRunFile(ctx, p.Store, p.RunsDir, run.ID, "report.md"); err == nil {
		v.Report = string(b)
	}
	if len(v.Report) > maxPageReport {
		v.ReportCut = len(v.Report) - maxPageReport
		v.Report = v.Report[:maxPageReport]
	}
	v.Report = termsafe.Text(v.Report)
	return v
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// cssWord keeps a status usable in a class name: lower-case letters and underscores, or
// "unknown".
func cssWord(s string) string {
	if s == "" || strings.TrimLeft(s, "abcdefghijklmnopqrstuvwxyz_") != "" {
		return "unknown"
	}
	return s
}
