package web

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/web/githublogin"
)

// Per-repository access. A session made from an API token sees every run and steers by its
// scope, as the token would through the API. A session signed in with GitHub sees the runs of
// the repositories its account can read there, and steers (dispatch, cancel, re-run) only where
// it can write: the role GitHub gives the account, read through the App (githublogin.Roles).

// RepoRoles answers what a GitHub account may do on a repository; *githublogin.Roles is one.
type RepoRoles interface {
	Can(ctx context.Context, login, owner, repo string, act githublogin.Action) (bool, error)
}

// errNoGitHub denies a GitHub session on a daemon that no longer offers GitHub sign-in: there
// is then nothing to ask its role from, and it must not fall back to its scope.
var errNoGitHub = errors.New("GitHub sign-in is not configured on this daemon any more; sign in with an API token")

// may reports whether the request's session may do act on repo ("owner/name"). An error means
// GitHub could not be asked; the answer is then no.
func (u *UI) may(r *http.Request, repo string, act githublogin.Action) (bool, error) {
	se, _ := sessionFrom(r.Context())
	if se.GitHubLogin == "" {
		return act == githublogin.View || se.Scope.Allows(store.ScopeDispatch), nil
	}
	if u.GitHub == nil || u.GitHub.Roles == nil {
		return false, errNoGitHub
	}
	owner, name, ok := strings.Cut(repo, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return false, nil // not a GitHub repository: no role there to read
	}
	return u.GitHub.Roles.Can(r.Context(), se.GitHubLogin, owner, name, act)
}

func (u *UI) allowed(r *http.Request, repo string, act githublogin.Action) bool {
	ok, err := u.may(r, repo, act)
	if err != nil {
		u.log().Warn("read a GitHub role", "repo", repo, "err", err)
	}
	return ok
}

// canSteer reports whether the session may dispatch, cancel or re-run on repo: what a page
// asks to decide whether to offer those buttons. (Routes on a run or a repository are checked
// before their handler runs, by githubGate; lists are filtered by listVisible.)
func (u *UI) canSteer(r *http.Request, repo string) bool {
	return u.allowed(r, repo, githublogin.Steer)
}

// githubFiltered are the routes without a run or repository in their path that filter what
// they show for a GitHub session themselves (listVisible, runSource). Every other such route
// refuses GitHub sessions: a page added later must opt in here once it filters, rather than
// show a GitHub account every repository by default.
var githubFiltered = map[string]bool{
	"GET /ui/runs":      true,
	"GET /ui/runs.json": true,
	"GET /ui/review":    true,
	"GET /ui/routines":  true, // visibleRepos
	"POST /ui/logout":   true,
}

// githubGate is requireSession's check of a GitHub session, so that every route, including
// those added later, is held to the account's roles without each handler asking: a route on a
// run ({id}) or a repository ({owner}/{repo}) needs read access there, and write access when
// it needs more than scope read; any other route must be one that filters (githubFiltered).
func (u *UI) githubGate(w http.ResponseWriter, r *http.Request, need store.Scope) bool {
	act := githublogin.View
	if need != store.ScopeRead {
		act = githublogin.Steer
	}
	if id := r.PathValue("id"); id != "" {
		return u.guardRun(w, r, id, act)
	}
	if owner, repo := r.PathValue("owner"), r.PathValue("repo"); owner != "" && repo != "" {
		return u.guardRepo(w, r, owner+"/"+repo, act, "no such repository")
	}
	if githubFiltered[r.Pattern] {
		return true
	}
	http.Error(w, "this page is not available to a GitHub sign-in; sign in with an API token", http.StatusForbidden)
	return false
}

// guardRun lets a request about run id through when the session may do act on its repository.
// Otherwise it answers: 404 when the session may not see the run (the same answer as for a run
// that does not exist, so a page does not tell which repositories have runs), 403 when it may
// see but not steer. Token sessions pass at once: their scope was checked by requireSession.
func (u *UI) guardRun(w http.ResponseWriter, r *http.Request, id string, act githublogin.Action) bool {
	if se, _ := sessionFrom(r.Context()); se.GitHubLogin == "" {
		return true
	}
	run, err := u.Store.GetRun(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "no such run", http.StatusNotFound)
		return false
	}
	if err != nil {
		u.log().Error("read run", "run", id, "err", err)
		http.Error(w, "cannot read the run now", http.StatusServiceUnavailable)
		return false
	}
	return u.guardRepo(w, r, run.Repo, act, "no such run")
}

// guardRepo lets a request through when the session may do act on repo: 404 when it may not
// see the repository (answering notFound, as for what does not exist), 403 when it may see but not steer, 503 when
// GitHub cannot be asked.
func (u *UI) guardRepo(w http.ResponseWriter, r *http.Request, repo string, act githublogin.Action, notFound string) bool {
	for _, a := range []githublogin.Action{githublogin.View, act} {
		ok, err := u.may(r, repo, a)
		if err != nil {
			u.log().Warn("read a GitHub role", "repo", repo, "err", err)
			http.Error(w, "cannot read your role on the repository from GitHub now; try again shortly", http.StatusServiceUnavailable)
			return false
		}
		switch {
		case !ok && a == githublogin.View:
			http.Error(w, notFound, http.StatusNotFound)
			return false
		case !ok:
			se, _ := sessionFrom(r.Context())
			http.Error(w, se.GitHubLogin+" cannot write to "+repo+" on GitHub; dispatching, cancelling and re-running its runs needs write access there", http.StatusForbidden)
			return false
		}
	}
	return true
}

// scanLimit bounds the runs one page of a GitHub session's list reads to find a page of runs
// it may see; past it the page ends early (the list is then shorter than it could be, never
// wrong).
const scanLimit = 20_000

// listVisible is Store.ListRuns for the request's session: a token session's list is the
// store's; a GitHub session's keeps only the runs of repositories the account can read, reading
// on in batches until f.Limit of them are found.
func (u *UI) listVisible(r *http.Request, f store.RunFilter) ([]store.Run, error) {
	se, _ := sessionFrom(r.Context())
	if se.GitHubLogin == "" {
		return u.Store.ListRuns(r.Context(), f)
	}
	want := f.Limit
	if want <= 0 {
		want = 100 // the store's default
	}
	if f.Repo != "" {
		// One repository: ask once rather than scan runs that would all be dropped.
		ok, err := u.may(r, f.Repo, githublogin.View)
		if err != nil || !ok {
			return nil, err
		}
		return u.Store.ListRuns(r.Context(), f)
	}
	batch := f
	batch.Limit = min(max(4*want, 200), 5000)
	var out []store.Run
	seen := map[string]bool{} // repo → may view, so each repository is asked once a page
	for scanned := 0; scanned < scanLimit; {
		runs, err := u.Store.ListRuns(r.Context(), batch)
		if err != nil {
			return nil, err
		}
		for _, run := range runs {
			ok, known := seen[run.Repo]
			if !known {
				if ok, err = u.may(r, run.Repo, githublogin.View); err != nil {
					return nil, err
				}
				seen[run.Repo] = ok
			}
			if ok {
				if out = append(out, run); len(out) == want {
					return out, nil
				}
			}
		}
		if len(runs) < batch.Limit {
			break
		}
		scanned += len(runs)
		batch.Before = store.CursorOf(runs[len(runs)-1])
	}
	return out, nil
}

// visibleSource is the store as a GitHub session may read it, for overview.ReviewSince.
type visibleSource struct {
	u *UI
	r *http.Request
}

func (v visibleSource) ListRuns(_ context.Context, f store.RunFilter) ([]store.Run, error) {
	return v.u.listVisible(v.r, f)
}

func (v visibleSource) RunFile(ctx context.Context, runID, name string) ([]byte, error) {
	return v.u.Store.RunFile(ctx, runID, name)
}

// runSource is what the review page reads runs from: the store, filtered for GitHub sessions.
func (u *UI) runSource(r *http.Request) visibleSource { return visibleSource{u: u, r: r} }
