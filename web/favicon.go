package web

import (
	"net/http"
)

// favicon serves the UI's icon at /favicon.ico too: browsers ask for it on every page that
// names no icon (the run summary pages, any page whose head forgets the link), and the 404
// would be an error in each page's console.
func favicon(w http.ResponseWriter, r *http.Request) {
	b, err := files.ReadFile("assets/favicon.svg")
	if err != nil {
		http.NotFound(w, r)
		return
	}
	setSecurityHeaders(w)
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Header().Set("Content-Type", "image/svg+xml")
	_, _ = w.Write(b)
}
