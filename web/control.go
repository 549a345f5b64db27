package web

import (
	"net/http"
)

// cancelJob stops one job of a run (POST /ui/runs/{id}/jobs/{job}/cancel, the job page's
// "Cancel job") and sends the browser back to the job's page, where the job shows as cancelled
// once its worker stopped it.
func (u *UI) cancelJob(w http.ResponseWriter, r *http.Request) {
	id, job := r.PathValue("id"), r.PathValue("job")
	se, _ := sessionFrom(r.Context())
	if err := u.Controller.CancelJob(r.Context(), id, job, "cancelled from the web UI by "+se.Who); err != nil {
		u.controlFailed(w, "cancel job", err)
		return
	}
	http.Redirect(w, r, jobHref(id, job), http.StatusSeeOther)
}
