package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/store"
)

// pageSize is how many runs a page lists.
const pageSize = 50

// triggers are the trigger filter's choices: the event kinds a run starts from.
var triggers = []string{"", event.KindPush, event.KindPullRequest, event.KindIssueComment, event.KindCheckRun,
	event.KindSchedule, event.KindDispatch, event.KindWebhook}

// RunURL is the address of run runID's page in the control room on the daemon at publicURL:
// the link of the run's check run, pull request and comment.
func RunURL(publicURL, runID string) string {
	return strings.TrimRight(publicURL, "/") + "/ui/runs/" + url.PathEscape(runID)
}

// filterOf reads the runs list's filter from the query: repo, routine, status, trigger, and
// before, the cursor of the previous page's last row ("Older →").
func filterOf(r *http.Request) (store.RunFilter, error) {
	q := r.URL.Query()
	before, err := store.ParseRunCursor(q.Get("before"))
	return store.RunFilter{Repo: q.Get("repo"), Routine: q.Get("routine"), Status: q.Get("status"), Event: q.Get("trigger"),
		Before: before, Limit: pageSize}, err
}

// filterQuery is the query of filter f without its cursor: the first page of the same list.
func filterQuery(f store.RunFilter) url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"repo": f.Repo, "routine": f.Routine, "status": f.Status, "trigger": f.Event} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// listPage lists one page of runs, and the cursor of the next (older) page, zero when this is
// the last: one row more than a page is read to know.
func (u *UI) listPage(r *http.Request, f store.RunFilter) ([]store.Run, store.RunCursor, error) {
	f.Limit = pageSize + 1
	runs, err := u.listVisible(r, f)
	if err != nil || len(runs) <= pageSize {
		return runs, store.RunCursor{}, err
	}
	runs = runs[:pageSize]
	return runs, store.CursorOf(runs[pageSize-1]), nil
}

type runRow struct {
	ID, Repo, Routine, SHA, Event, Status, Conclusion string
	Created                                           time.Time
	RerunOf                                           string `json:",omitempty"` // the run this one re-runs
}

func rows(runs []store.Run) []runRow {
	out := make([]runRow, len(runs))
	for i, r := range runs {
		out[i] = runRow{ID: r.ID, Repo: r.Repo, Routine: r.Routine, SHA: r.SHA, Event: r.EventKind, Status: r.Status, Conclusion: r.Conclusion, Created: r.CreatedAt, RerunOf: r.RerunOf}
	}
	return out
}

// runs serves the runs list. The first page polls its JSON twin to update itself; an older
// page (before set) stays as it was loaded, so rows do not move under the reader.
func (u *UI) runs(w http.ResponseWriter, r *http.Request) {
	f, err := filterOf(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	runs, next, err := u.listPage(r, f)
	if err != nil {
		u.log().Error("list runs", "err", err)
		http.Error(w, "cannot list runs now", http.StatusServiceUnavailable)
		return
	}
	se, _ := sessionFrom(r.Context())
	q := filterQuery(f)
	data := map[string]any{"Session": se.Session, "CSRF": se.csrfToken(), "Filter": f, "Runs": rows(runs),
		"Triggers": triggers, "Query": q.Encode(), "Older": !f.Before.IsZero()}
	if !next.IsZero() {
		q.Set("before", next.String())
		data["Next"] = "/ui/runs?" + q.Encode()
	}
	u.render(w, http.StatusOK, "runs", data)
}

// runsJSON is what the runs page polls to update itself: the same filter, a small answer (an
// array of rows). A Link header (rel="next") names the next page when there is one.
func (u *UI) runsJSON(w http.ResponseWriter, r *http.Request) {
	f, err := filterOf(r)
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	runs, next, err := u.listPage(r, f)
	if err != nil {
		http.Error(w, `{"error":"cannot list runs now"}`, http.StatusServiceUnavailable)
		return
	}
	if !next.IsZero() {
		q := filterQuery(f)
		q.Set("before", next.String())
		w.Header().Set("Link", `</ui/runs.json?`+q.Encode()+`>; rel="next"`)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rows(runs))
}
