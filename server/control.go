package server

import (
	"net/http"
	"strings"
)

// cancelReason is a cancel request's reason as the run and its check run show it: one line,
// at most maxCancelReason bytes.
func cancelReason(req CancelRequest) string {
	reason := strings.Join(strings.Fields(req.Reason), " ")
	if len(reason) > maxCancelReason {
		reason = strings.ToValidUTF8(reason[:maxCancelReason], "") + "…"
	}
	if reason == "" {
		reason = "cancelled on request"
	}
	return reason
}

// cancelJob cancels one job of a run (POST /api/v1/runs/{id}/jobs/{job}/cancel, the body as
// for a run's cancel); the run goes on with its other jobs. 202: the job's worker stops it.
func (a *API) cancelJob(w http.ResponseWriter, r *http.Request) {
	var req CancelRequest
	if !readBody(w, r, &req, `{"reason": "why"}`) {
		return
	}
	res, err := a.Dispatcher.CancelJob(r.Context(), r.PathValue("id"), r.PathValue("job"), cancelReason(req))
	if err != nil {
		a.fail(w, "cancel job", err)
		return
	}
	writeJSON(w, http.StatusAccepted, res)
}
