package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/internal/safefile"
	"github.com/agentrunner/agentrunner/overview"
	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
)

// maxAPIBody caps a dispatch request's body; inputs are short strings.
const maxAPIBody = 1 << 20

// Dispatcher starts, cancels and re-runs runs on request; *daemon.Daemon implements it.
// Errors that carry an HTTPStatus() method choose the answer's status; daemon.ErrDraining
// answers 503.
type Dispatcher interface {
	Dispatch(ctx context.Context, repo, routine string, inputs map[string]string) (*daemon.DispatchResult, error)
	Hook(ctx context.Context, repo, routine string, body []byte, signature, deliveryID string) (*daemon.DispatchResult, error)
	Cancel(ctx context.Context, runID, reason string) (*daemon.CancelResult, error)
	Rerun(ctx context.Context, runID string) (*daemon.RerunResult, error)
	CancelJob(ctx context.Context, runID, job, reason string) (*daemon.CancelJobResult, error)
}

// API serves the dispatch and read API (bearer token), the generic webhooks (HMAC per
// routine) and /metrics.
type API struct {
	Store      store.Store
	Dispatcher Dispatcher
	// RunsDir holds <run id>/jobs/<job>/log.txt, as the daemon's pipeline writes them.
	RunsDir string
	// Gatherer serves /metrics (nil: no /metrics).
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// Routines lists the repositories served and their routines (nil: none are listed).
	Routines overview.ConfigSource
	// Logs follows a job's log live (?follow=sse); nil: only the log as it is now.
	Logs LogStream
}

// LogStream serves a job's live log as Server-Sent Events (package livelog implements it).
type LogStream interface {
	ServeSSE(w http.ResponseWriter, r *http.Request, runID, job string)
}

// Register adds the API's routes to mux. Each token route names the scope it needs: reading
// needs read; starting, cancelling or rerunning runs needs dispatch; managing the daemon
// itself needs admin.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/v1/repos/{owner}/{repo}/routines/{routine}/dispatch", a.auth(store.ScopeDispatch, a.dispatch))
	mux.HandleFunc("GET /api/v1/runs", a.auth(store.ScopeRead, a.listRuns))
	mux.HandleFunc("GET /api/v1/runs/{id}", a.auth(store.ScopeRead, a.getRun))
	mux.HandleFunc("GET /api/v1/runs/{id}/jobs/{job}/log", a.auth(store.ScopeRead, a.jobLog))
	mux.HandleFunc("POST /api/v1/runs/{id}/cancel", a.auth(store.ScopeDispatch, a.cancel))
	mux.HandleFunc("POST /api/v1/runs/{id}/rerun", a.auth(store.ScopeDispatch, a.rerun))
	mux.HandleFunc("POST /api/v1/runs/{id}/jobs/{job}/cancel", a.auth(store.ScopeDispatch, a.cancelJob))
	mux.HandleFunc("GET /api/v1/review", a.auth(store.ScopeRead, a.review))
	mux.HandleFunc("GET /api/v1/spend", a.auth(store.ScopeRead, a.spend))
	mux.HandleFunc("GET /api/v1/repos", a.auth(store.ScopeRead, a.repos))
	mux.HandleFunc("GET /api/v1/repos/{owner}/{repo}/routines", a.auth(store.ScopeRead, a.routines))
	mux.HandleFunc("POST "+HookPath, a.hook)
	if a.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(a.Gatherer, promhttp.HandlerOpts{}))
	}
}

func (a *API) log() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// auth lets a request through to next when its bearer token is valid, unexpired and has scope
// need (or one including it). Otherwise it answers 401 (no token, an unknown one, an expired
// one: each says which) or 403 (a valid token lacking the scope: it says which scope is needed
// and how to make such a token).
func (a *API) auth(need store.Scope, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		plain, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || plain == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="agentrunner"`)
			apiError(w, http.StatusUnauthorized, fmt.Sprintf("missing bearer token (create one with `runner token create NAME --scope %s`)", need))
			return
		}
		tok, err := a.Store.CheckToken(r.Context(), strings.TrimSpace(plain))
		switch {
		case errors.Is(err, store.ErrNotFound):
			w.Header().Set("WWW-Authenticate", `Bearer realm="agentrunner", error="invalid_token"`)
			apiError(w, http.StatusUnauthorized, "invalid token (unknown or revoked)")
			return
		case errors.Is(err, store.ErrTokenExpired):
			w.Header().Set("WWW-Authenticate", `Bearer realm="agentrunner", error="invalid_token", error_description="expired"`)
			apiError(w, http.StatusUnauthorized, fmt.Sprintf("token %q expired at %s; replace it: `runner token revoke %s` then `runner token create %s --scope %s --expires 30d`",
				tok.Name, tok.ExpiresAt.UTC().Format(time.RFC3339), tok.Name, tok.Name, tok.Scope))
			return
		case err != nil:
			a.log().Error("check token", "err", err)
			apiError(w, http.StatusServiceUnavailable, "cannot check the token now")
			return
		}
		if !tok.Scope.Allows(need) {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="agentrunner", error="insufficient_scope", scope=%q`, need))
			apiError(w, http.StatusForbidden, fmt.Sprintf("token %q has scope %q; %s %s needs scope %s (or a wider one): create such a token with `runner token create NAME --scope %s`",
				tok.Name, tok.Scope, r.Method, r.URL.Path, need, need))
			return
		}
		a.log().Debug("api request", "token", tok.Name, "scope", tok.Scope, "method", r.Method, "path", r.URL.Path)
		next(w, r)
	}
}

// DispatchRequest is the body of a dispatch.
type DispatchRequest struct {
	Inputs map[string]string `json:"inputs,omitempty"`
	// Prompt is a free-text task: the input named prompt, which the routine must declare.
	Prompt string `json:"prompt,omitempty"`
}

func (a *API) dispatch(w http.ResponseWriter, r *http.Request) {
	var req DispatchRequest
	if !readBody(w, r, &req, `{"inputs": {"name": "value"}, "prompt": "a free-text task"}`) {
		return
	}
	if req.Prompt != "" {
		if _, set := req.Inputs["prompt"]; set {
			apiError(w, http.StatusBadRequest, `"prompt" and inputs.prompt both give the prompt; send one`)
			return
		}
		if req.Inputs == nil {
			req.Inputs = map[string]string{}
		}
		req.Inputs["prompt"] = req.Prompt
	}
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	res, err := a.Dispatcher.Dispatch(r.Context(), repo, r.PathValue("routine"), req.Inputs)
	if err != nil {
		a.fail(w, "dispatch", err)
		return
	}
	writeJSON(w, http.StatusAccepted, res)
}

// CancelRequest is the (optional) body of a cancel.
type CancelRequest struct {
	// Reason is shown on the run and its check run (one line; at most 500 bytes are kept).
	Reason string `json:"reason,omitempty"`
}

// maxCancelReason bounds a cancel's reason, which the run and its check run show.
const maxCancelReason = 500

func (a *API) cancel(w http.ResponseWriter, r *http.Request) {
	var req CancelRequest
	if !readBody(w, r, &req, `{"reason": "why"}`) {
		return
	}
	res, err := a.Dispatcher.Cancel(r.Context(), r.PathValue("id"), cancelReason(req))
	if err != nil {
		a.fail(w, "cancel", err)
		return
	}
	code := http.StatusOK
	if res.Status != store.RunCompleted {
		code = http.StatusAccepted // its worker is stopping it
	}
	writeJSON(w, code, res)
}

func (a *API) rerun(w http.ResponseWriter, r *http.Request) {
	res, err := a.Dispatcher.Rerun(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, "rerun", err)
		return
	}
	// A re-run is a new run: 201 with where to read it.
	w.Header().Set("Location", "/api/v1/runs/"+url.PathEscape(res.RunID))
	writeJSON(w, http.StatusCreated, res)
}

// readBody decodes an optional JSON body into v, refusing unknown fields and bodies over
// maxAPIBody; false when it answered with the error (want shows the expected shape).
func readBody(w http.ResponseWriter, r *http.Request, v any, want string) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err != nil {
		apiError(w, http.StatusRequestEntityTooLarge, "body over 1 MiB")
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return true
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		apiError(w, http.StatusBadRequest, "body: want "+want+": "+err.Error())
		return false
	}
	return true
}

func (a *API) fail(w http.ResponseWriter, what string, err error) {
	var st interface{ HTTPStatus() int }
	switch {
	case errors.As(err, &st):
		apiError(w, st.HTTPStatus(), err.Error())
	case errors.Is(err, daemon.ErrDraining):
		w.Header().Set("Retry-After", "10")
		apiError(w, http.StatusServiceUnavailable, err.Error())
	default:
		a.log().Error(what+" failed", "err", err)
		apiError(w, http.StatusServiceUnavailable, what+" failed: "+err.Error())
	}
}

// RunView is a run as the read API shows it.
type RunView struct {
	ID               string `json:"id"`
	Repo             string `json:"repo"`
	Routine          string `json:"routine"`
	SHA              string `json:"sha"`
	Event            string `json:"event"`
	DeliveryID       string `json:"delivery_id"`
	ConcurrencyGroup string `json:"concurrency_group,omitempty"`
	// RerunOf is the run this one re-runs.
	RerunOf    string          `json:"rerun_of,omitempty"`
	Status     string          `json:"status"`
	Conclusion string          `json:"conclusion,omitempty"`
	Error      string          `json:"error,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  time.Time       `json:"started_at,omitzero"`
	FinishedAt time.Time       `json:"finished_at,omitzero"`
	Plan       json.RawMessage `json:"plan,omitempty"`
	Jobs       []JobView       `json:"jobs,omitempty"`
	// SpendUSD is what the run's model calls cost, as the egress proxy metered them.
	SpendUSD float64 `json:"spend_usd,omitempty"`
}

// NewRunView is the API's view of a stored run (with its plan when the run has one).
func NewRunView(r store.Run) RunView {
	v := RunView{ID: r.ID, Repo: r.Repo, Routine: r.Routine, SHA: r.SHA, Event: r.EventKind, DeliveryID: r.DeliveryID,
		ConcurrencyGroup: r.ConcurrencyGroup, RerunOf: r.RerunOf, Status: r.Status, Conclusion: r.Conclusion, Error: r.Error,
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}
	if len(r.Plan) > 0 && json.Valid(r.Plan) {
		v.Plan = json.RawMessage(r.Plan)
	}
	return v
}

// JobView is one agent job of a run, from the run's result.
type JobView struct {
	ID      string `json:"id"`
	Agent   string `json:"agent"`
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
	// Workflow is the workflow an orchestrating agent wrote and the runner ran.
	Workflow string `json:"workflow,omitempty"`
	// State is pending, running or finished while the run goes on (Outcome is set once it
	// has ended).
	State string `json:"state,omitempty"`
	// Metered is what the job's model calls cost, as the egress proxy metered them.
	Metered *result.Metered `json:"metered,omitempty"`
}

func (a *API) listRuns(w http.ResponseWriter, r *http.Request) {
	f, err := runFilterOf(r.URL.Query())
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	runs, err := a.Store.ListRuns(r.Context(), f)
	if err != nil {
		a.fail(w, "list runs", err)
		return
	}
	out := make([]RunView, len(runs))
	for i, r := range runs {
		out[i] = NewRunView(r)
		out[i].Plan = nil
	}
	if link := nextRunsLink(r.URL, f, runs); link != "" {
		w.Header().Set("Link", link)
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) getRun(w http.ResponseWriter, r *http.Request) {
	run, err := a.Store.GetRun(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		apiError(w, http.StatusNotFound, "no run "+r.PathValue("id"))
		return
	}
	if err != nil {
		a.fail(w, "get run", err)
		return
	}
	v := NewRunView(run)
	// Only a finished run's result is its own: a run queued again may still have its earlier
	// result in the run directory until the new one replaces it. A run under way lists its
	// jobs as they start, on whichever daemon (an orchestrator's workflow's too).
	if run.Status != store.RunCompleted {
		if js, err := a.Store.RunJobs(r.Context(), run.ID); err == nil {
			for _, j := range js {
				v.Jobs = append(v.Jobs, JobView{ID: j.Job, Agent: runner.JobAgent(j.Job), State: j.State})
			}
		}
		writeJSON(w, http.StatusOK, v)
		return
	}
	if b, err := a.runFile(r.Context(), run.ID, "result.json"); err == nil {
		var res struct {
			Jobs []JobView `json:"jobs"`
		}
		if json.Unmarshal(b, &res) == nil {
			v.Jobs = res.Jobs
			for _, j := range v.Jobs {
				if j.Metered != nil {
					v.SpendUSD += j.Metered.USD
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, v)
}

func (a *API) jobLog(w http.ResponseWriter, r *http.Request) {
	id, job := r.PathValue("id"), r.PathValue("job")
	if r.URL.Query().Get("follow") == "sse" {
		if a.Logs == nil {
			apiError(w, http.StatusNotImplemented, "this daemon does not follow logs live")
			return
		}
		// One event per line as the agent prints it, on whichever daemon of the fleet runs
		// the job; 204 when the run is over (its stored log, without ?follow, has it all).
		a.Logs.ServeSSE(w, r, id, job)
		return
	}
	run, err := a.Store.GetRun(r.Context(), id)
	if err != nil {
		apiError(w, http.StatusNotFound, "no run "+id)
		return
	}
	for _, name := range []string{job, runner.JobDirName(job)} {
		if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
			continue
		}
		// The file grows while the job runs on this daemon; the store has it once the run is
		// over, whichever daemon ran it.
		// Range requests (bytes=N-) let a client follow a growing log.
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Run-Status", run.Status)
		if f, err := safefile.Open(filepath.Join(a.RunsDir, id), "jobs/"+name+"/log.txt"); err == nil {
			defer f.Close()
			http.ServeContent(w, r, "", time.Time{}, f)
			return
		}
		if b, err := a.Store.RunFile(r.Context(), id, "jobs/"+name+"/log.txt"); err == nil {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
			return
		}
	}
	apiError(w, http.StatusNotFound, fmt.Sprintf("no log for job %q of run %s", job, id))
}

// runFile reads a run's file (see readRunFile).
func (a *API) runFile(ctx context.Context, runID, name string) ([]byte, error) {
	return readRunFile(ctx, a.Store, a.RunsDir, runID, name)
}

// readRunFile reads a run's file from this daemon's run directory, or else from the store,
// where the daemon that ran the run keeps it. The run directory also holds what agents wrote,
// so nothing served from it may be a symlink or other than a regular file (safefile).
func readRunFile(ctx context.Context, st store.Store, runsDir, runID, name string) ([]byte, error) {
	// A run id is one path element; an id from a URL could be "../x".
	if runsDir != "" && filepath.IsLocal(runID) && !strings.ContainsAny(runID, `/\`) {
		if f, err := safefile.Open(filepath.Join(runsDir, runID), name); err == nil {
			defer f.Close()
			if b, err := io.ReadAll(f); err == nil {
				return b, nil
			}
		}
	}
	return st.RunFile(ctx, runID, name)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
