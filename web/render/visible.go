// Package render turns untrusted, agent-written bytes into safe HTML for the web UI: a report's
// Markdown (Markdown) and a git patch as a per-file diff model (ParsePatch) that a template
// renders. It owns sanitizing and bounds; it knows nothing of HTTP, sessions or the store.
package render

import (
	"strings"
	"unicode/utf8"
)

// Visible makes terminal escapes and other invisible control characters visible: C0 controls
// (but tab, newline, carriage return) become their Unicode control pictures (ESC shows as ␛),
// DEL shows as ␡, and C1 controls and bidirectional overrides/isolates (which can make text read
// differently from what it is, "Trojan Source") become U+FFFD. Invalid UTF-8 becomes U+FFFD too.
// html/template escapes HTML but passes these through, so every agent-written string shown in the
// UI should go through Visible.
func Visible(s string) string {
	clean := true
	for _, r := range s {
		if needsMapping(r) {
			clean = false
			break
		}
	}
	if clean && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s { // ranging over a string yields U+FFFD for invalid bytes
		b.WriteRune(mapRune(r))
	}
	return b.String()
}

func needsMapping(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r':
		return false
	case r < 0x20 || r == 0x7f:
		return true
	case r >= 0x80 && r <= 0x9f: // C1 controls, including CSI (U+009B)
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return true
	}
	return false
}

func mapRune(r rune) rune {
	if !needsMapping(r) {
		return r
	}
	switch {
	case r < 0x20:
		return 0x2400 + r
	case r == 0x7f:
		return 0x2421
	}
	return utf8.RuneError
}
