package server

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/agentrunner/agentrunner/overview"
)

// RepoView is a repository in GET /api/v1/repos.
type RepoView struct {
	Name string `json:"name"`
	// RoutinesURL is where its routines are listed (a path on this server).
	RoutinesURL string `json:"routines_url"`
}

// ReposView is the answer of GET /api/v1/repos.
type ReposView struct {
	Repos []RepoView `json:"repos"`
}

// repos serves GET /api/v1/repos: the repositories this daemon serves, configured or learned
// from webhooks.
func (a *API) repos(w http.ResponseWriter, r *http.Request) {
	v := ReposView{Repos: []RepoView{}}
	if a.Routines != nil {
		for _, name := range a.Routines.RepoNames() {
			v.Repos = append(v.Repos, RepoView{Name: name, RoutinesURL: "/api/v1/repos/" + escapeRepo(name) + "/routines"})
		}
	}
	writeJSON(w, http.StatusOK, v)
}

// routines serves GET /api/v1/repos/{owner}/{repo}/routines: the repository's routines at its
// default branch (overview.Routines) with their triggers, next schedule ticks, dispatch inputs
// and newest runs.
func (a *API) routines(w http.ResponseWriter, r *http.Request) {
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	if a.Routines == nil {
		apiError(w, http.StatusNotFound, "this server lists no routines (it runs without a daemon)")
		return
	}
	rr, err := overview.Routines(r.Context(), a.Routines, a.Store, repo, time.Now(), overview.RecentRuns)
	if errors.Is(err, overview.ErrUnknownRepo) {
		apiError(w, http.StatusNotFound, err.Error()+"; GET /api/v1/repos lists the ones it serves")
		return
	}
	if err != nil {
		a.fail(w, "list routines", err)
		return
	}
	writeJSON(w, http.StatusOK, rr)
}

// escapeRepo escapes owner and name for a path, keeping the slash between them.
func escapeRepo(name string) string {
	return (&url.URL{Path: name}).EscapedPath()
}
