package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/agentrunner/agentrunner/daemon"
)

// HookPath is where external systems call routines with `on: webhook`.
const HookPath = "/hooks/{owner}/{repo}/{routine}"

// hook hands a signed call to the daemon, which authenticates it before it fetches anything.
// The caller is not authenticated yet: an answer never carries an internal error.
func (a *API) hook(w http.ResponseWriter, r *http.Request) {
	sig := r.Header.Get("X-Hub-Signature-256")
	if sig == "" {
		apiError(w, http.StatusUnauthorized, "missing X-Hub-Signature-256 (want sha256=<hex HMAC-SHA256 of the body>)")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		apiError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxWebhookBody))
		return
	}
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	delivery := r.Header.Get("X-Delivery-ID")
	res, err := a.Dispatcher.Hook(r.Context(), repo, r.PathValue("routine"), body, sig, delivery)
	var re *daemon.RequestError
	switch {
	case err == nil:
		writeJSON(w, http.StatusAccepted, res)
	case errors.As(err, &re):
		apiError(w, re.Status, re.Error())
	case errors.Is(err, daemon.ErrDraining):
		w.Header().Set("Retry-After", "10")
		apiError(w, http.StatusServiceUnavailable, err.Error())
	default:
		a.log().Error("hook failed", "err", err)
		apiError(w, http.StatusServiceUnavailable, "the call could not be accepted; retry later")
	}
}
