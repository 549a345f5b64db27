package server

import (
	"fmt"
	"io"
	"net/http"
)

// HookPath is where external systems call routines with `on: webhook`.
const HookPath = "/hooks/{owner}/{repo}/{routine}"

func (a *API) hook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		apiError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", MaxWebhookBody))
		return
	}
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	delivery := r.Header.Get("X-Delivery-ID")
	res, err := a.Dispatcher.Hook(r.Context(), repo, r.PathValue("routine"), body, r.Header.Get("X-Hub-Signature-256"), delivery)
	if err != nil {
		a.fail(w, "hook", err)
		return
	}
	writeJSON(w, http.StatusAccepted, res)
}
