package server

import (
	"fmt"
	"net/url"
	"strconv"

	"github.com/agentrunner/agentrunner/store"
)

// maxListRuns bounds one page of GET /api/v1/runs.
const maxListRuns = 1000

// runFilterOf reads GET /api/v1/runs' query: repo, routine, status, trigger (the event kind),
// delivery, limit (100 by default, at most 1000) and before, the cursor of the previous page's
// last run as the Link header's rel="next" gives it.
func runFilterOf(q url.Values) (store.RunFilter, error) {
	f := store.RunFilter{Repo: q.Get("repo"), Routine: q.Get("routine"), Status: q.Get("status"), Event: q.Get("trigger"),
		DeliveryID: q.Get("delivery")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListRuns {
			return f, fmt.Errorf("limit %q: want a number of runs from 1 to %d", s, maxListRuns)
		}
		f.Limit = n
	}
	var err error
	f.Before, err = store.ParseRunCursor(q.Get("before"))
	return f, err
}

// nextRunsLink is the Link header naming the next (older) page, when this one was full: the
// same query with before set to its last run.
func nextRunsLink(u *url.URL, f store.RunFilter, runs []store.Run) string {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	if len(runs) < limit || len(runs) == 0 {
		return ""
	}
	q := u.Query()
	q.Set("before", store.CursorOf(runs[len(runs)-1]).String())
	return "<" + u.Path + "?" + q.Encode() + `>; rel="next"`
}
