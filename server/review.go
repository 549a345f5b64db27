package server

import (
	"net/http"
	"time"

	"github.com/agentrunner/agentrunner/overview"
)

// review serves GET /api/v1/review?since=24h: the morning review (overview.Review) of the runs
// completed since then; since takes what overview.ParseSince reads (default: 24 hours).
func (a *API) review(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	since, err := overview.ParseSince(r.URL.Query().Get("since"), now)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	rv, err := overview.ReviewSince(r.Context(), a.Store, since, now)
	if err != nil {
		a.fail(w, "review", err)
		return
	}
	writeJSON(w, http.StatusOK, rv)
}
