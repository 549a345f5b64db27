// Package termsafe makes text that an agent, a repository or an event controls safe to print
// on a person's terminal. Such text may carry escape sequences that a terminal obeys: OSC 52
// writes the clipboard, CSI 2J clears the screen, OSC 8 disguises links, bidi overrides
// reorder what is shown. Text and Line render every such character visibly escaped (`\x1b`,
// `\u009b`, `\u202e`), so the reader sees what was sent and the terminal obeys none of it.
package termsafe

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Text returns s safe for a terminal, keeping its line breaks and tabs: C0 controls other
// than \n and \t, DEL, C1 controls (U+0080–U+009F), bidi overrides and isolates
// (U+202A–U+202E, U+2066–U+2069) and bytes that are not UTF-8 are escaped. Text without
// any of these is returned unchanged.
func Text(s string) string { return escape(s, true) }

// Line is Text for a single-line context (a table cell, a status line, a prefixed log
// line): it escapes \n too, so the text cannot start a line of its own.
func Line(s string) string { return escape(s, false) }

func escape(s string, keepNewline bool) string {
	i := firstUnsafe(s, keepNewline)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafeRune(r, keepNewline):
			if r < 0x80 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// firstUnsafe is the index of the first byte to escape, or -1: the fast path for the
// common, clean string.
func firstUnsafe(s string, keepNewline bool) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if unsafeRune(rune(c), keepNewline) {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || unsafeRune(r, keepNewline) {
			return i
		}
		i += size
	}
	return -1
}

func unsafeRune(r rune, keepNewline bool) bool {
	switch {
	case r == '\t':
		return false
	case r == '\n':
		return !keepNewline
	case r < 0x20, r == 0x7f:
		return true // C0 controls and DEL
	case r >= 0x80 && r <= 0x9f:
		return true // C1 controls: U+009B is a one-character CSI
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true // bidi embeddings, overrides and isolates
	}
	return false
}
