package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/agentrunner/agentrunner/overview"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/web/githublogin"
)

// Dispatcher starts a routine from the Run form; cmd/runner adapts *daemon.Daemon. Errors with
// an HTTPStatus() method choose the page's status (a wrong input: 422); others answer 503.
type Dispatcher interface {
	Dispatch(ctx context.Context, repo, routine string, inputs map[string]string) (runID string, err error)
}

// inputField is the form field of a dispatch input: "input." + its name, so no input can
// shadow the csrf field.
const inputField = "input."

// routineView is one routine on the repository page, with its Run form's fields.
type routineView struct {
	overview.Routine
	Fields []formField
	Prompt *formField
	// Error is why the last Run of this routine was refused; the form then shows what was typed.
	Error string
}

type formField struct {
	overview.Input
	Field string // the form field's name
	ID    string // the element's id, unique on the page
	Value string
}

// routinesPage serves /ui/routines: every repository served, each routine's triggers, next
// tick and latest run, linking to the repository's page where the Run forms are.
func (u *UI) routinesPage(w http.ResponseWriter, r *http.Request) {
	se, _ := sessionFrom(r.Context())
	data := map[string]any{"Session": se.Session, "CSRF": se.csrfToken()}
	if u.Routines == nil {
		data["Error"] = "This daemon lists no routines."
		u.render(w, http.StatusOK, "routines", data)
		return
	}
	all, err := overview.AllRoutines(r.Context(), visibleRepos{u.Routines, u, r}, u.Store, time.Now(), 1)
	if err != nil {
		u.log().Error("routines page", "err", err)
		http.Error(w, "cannot list the routines now; try again shortly", http.StatusServiceUnavailable)
		return
	}
	data["Repos"] = all
	u.render(w, http.StatusOK, "routines", data)
}

// visibleRepos is the routines source as the request's session may see it: a GitHub session
// lists the repositories its account can read (access.go), a token session all.
type visibleRepos struct {
	overview.ConfigSource
	u *UI
	r *http.Request
}

func (v visibleRepos) RepoNames() []string {
	var out []string
	for _, name := range v.ConfigSource.RepoNames() {
		if v.u.allowed(v.r, name, githublogin.View) {
			out = append(out, name)
		}
	}
	return out
}

// repoPage serves /ui/repos/{owner}/{repo}: the repository's routines with their triggers,
// next ticks, newest runs and Run forms.
func (u *UI) repoPage(w http.ResponseWriter, r *http.Request) {
	rr, ok := u.repoRoutines(w, r)
	if !ok {
		return
	}
	u.renderRepo(w, r, http.StatusOK, rr, "", "", nil)
}

// repoRoutines reads the repository of the request's path; it answers the request itself
// when it cannot.
func (u *UI) repoRoutines(w http.ResponseWriter, r *http.Request) (*overview.RepoRoutines, bool) {
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	if u.Routines == nil {
		http.Error(w, "this daemon lists no routines", http.StatusNotFound)
		return nil, false
	}
	rr, err := overview.Routines(r.Context(), u.Routines, u.Store, repo, time.Now(), overview.RecentRuns)
	if errors.Is(err, overview.ErrUnknownRepo) {
		http.Error(w, "this runner does not serve "+repo+"; /ui/routines lists the ones it serves", http.StatusNotFound)
		return nil, false
	}
	if err != nil {
		u.log().Error("repository page", "repo", repo, "err", err)
		http.Error(w, "cannot list the routines now; try again shortly", http.StatusServiceUnavailable)
		return nil, false
	}
	return rr, true
}

// renderRepo renders the repository page; when failed names a routine, its form shows msg and
// the values typed instead of the defaults.
func (u *UI) renderRepo(w http.ResponseWriter, r *http.Request, code int, rr *overview.RepoRoutines, failed, msg string, typed map[string]string) {
	se, _ := sessionFrom(r.Context())
	views := make([]routineView, len(rr.Routines))
	for i, rt := range rr.Routines {
		v := routineView{Routine: rt}
		value := func(in overview.Input) string {
			if rt.Name == failed {
				return typed[in.Name]
			}
			return in.Default
		}
		for _, in := range rt.Inputs {
			v.Fields = append(v.Fields, formField{Input: in, Field: inputField + in.Name, ID: "in-" + rt.Name + "-" + in.Name, Value: value(in)})
		}
		if rt.Prompt != nil {
			v.Prompt = &formField{Input: *rt.Prompt, Field: inputField + rt.Prompt.Name, ID: "in-" + rt.Name + "-" + rt.Prompt.Name, Value: value(*rt.Prompt)}
		}
		if rt.Name == failed {
			v.Error = msg
		}
		views[i] = v
	}
	// A token session dispatches by its scope, a GitHub one where its account can write.
	canDispatch := u.Dispatcher != nil && u.canSteer(r, rr.Repo)
	data := map[string]any{"Session": se.Session, "CSRF": se.csrfToken(), "Repo": rr, "Routines": views, "CanDispatch": canDispatch}
	// A refusal without a form to show it in (no such routine, none to dispatch) heads the page.
	if rt := rr.Routine(failed); failed != "" && (rt == nil || !rt.Dispatchable || !canDispatch) {
		data["Error"] = msg
	}
	u.render(w, code, "repo", data)
}

// dispatch serves the Run form: it checks the inputs against the routine as the page showed
// it, dispatches, and sends the browser to the new run. A refused dispatch shows the page
// again with the reason and what was typed.
func (u *UI) dispatch(w http.ResponseWriter, r *http.Request) {
	rr, ok := u.repoRoutines(w, r)
	if !ok {
		return
	}
	name := r.PathValue("routine")
	rt := rr.Routine(name)
	if rt == nil {
		u.renderRepo(w, r, http.StatusNotFound, rr, name, "There is no routine "+name+" on "+rr.Branch+" any more; pick one below.", nil)
		return
	}
	if !rt.Dispatchable {
		u.renderRepo(w, r, http.StatusUnprocessableEntity, rr, name, "Routine "+name+" has no on.dispatch trigger, so it cannot be run by hand.", nil)
		return
	}
	if u.Dispatcher == nil {
		u.renderRepo(w, r, http.StatusServiceUnavailable, rr, name, "This daemon does not dispatch from the web UI.", nil)
		return
	}
	declared := slices.Clone(rt.Inputs)
	if rt.Prompt != nil {
		declared = append(declared, *rt.Prompt)
	}
	typed := map[string]string{}
	inputs := map[string]string{}
	var problems []string
	for _, in := range declared {
		v := r.PostFormValue(inputField + in.Name)
		if in.Name == overview.PromptInput {
			v = strings.ReplaceAll(v, "\r\n", "\n") // browsers send a text area's lines with CRLF
		}
		typed[in.Name] = v
		switch {
		case strings.TrimSpace(v) == "" && in.Required && in.Default == "":
			problems = append(problems, "Fill in "+in.Name+": it is required.")
		case v == "":
			// Left empty: the routine's default applies.
		case len(in.Options) > 0 && !slices.Contains(in.Options, v):
			problems = append(problems, in.Name+" must be one of "+strings.Join(in.Options, ", ")+".")
		default:
			inputs[in.Name] = v
		}
	}
	if len(problems) > 0 {
		u.renderRepo(w, r, http.StatusUnprocessableEntity, rr, name, strings.Join(problems, " "), typed)
		return
	}
	runID, err := u.Dispatcher.Dispatch(r.Context(), rr.Repo, name, inputs)
	if err != nil {
		code := http.StatusServiceUnavailable
		var st interface{ HTTPStatus() int }
		if errors.As(err, &st) {
			code = st.HTTPStatus()
		}
		u.renderRepo(w, r, code, rr, name, "Not dispatched: "+err.Error(), typed)
		return
	}
	se, _ := sessionFrom(r.Context())
	u.log().Info("dispatched from the web UI", "who", se.Who, "repo", rr.Repo, "routine", name, "run_id", runID)
	u.waitForRun(r.Context(), runID)
	http.Redirect(w, r, "/ui/runs/"+url.PathEscape(runID), http.StatusSeeOther)
}

// runAppearWait bounds how long a dispatch waits for its run to be recorded.
const runAppearWait = 5 * time.Second

// waitForRun waits, a little, until the store has the run: a dispatch is queued and the run
// is recorded when a daemon takes it in, a moment later, and the run page answers 404 until
// then. Past the wait the browser goes to the run page anyway.
func (u *UI) waitForRun(ctx context.Context, runID string) {
	ctx, cancel := context.WithTimeout(ctx, runAppearWait)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := u.Store.GetRun(ctx, runID); err == nil || !errors.Is(err, store.ErrNotFound) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
