// Package english writes the small pieces of English the runner's messages need, so that
// every command says "1 agent" and "2 agents" the same way.
package english

import "strconv"

// Count is n followed by noun, in the plural unless n is 1: "1 agent", "0 agents",
// "3 changed files". noun is the singular; its plural adds an s.
func Count(n int, noun string) string {
	return strconv.Itoa(n) + " " + Plural(n, noun)
}

// Plural is noun, with an s unless n is 1.
func Plural(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}
