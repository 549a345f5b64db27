package event

import (
	"strings"
)

// ParseCommand reads a `/agents run <routine>` command from a comment body. Only the first
// non-empty line counts; it may be indented, but must hold nothing else than the command and
// one routine name made of letters, digits, `.`, `_` and `-`. Anything looser would let a
// quoted or chatty comment start a run by accident.
func ParseCommand(body string) (routine string, ok bool) {
	for line := range strings.SplitSeq(body, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "/agents" || f[1] != "run" || !validRoutine(f[2]) {
			return "", false
		}
		return f[2], true
	}
	return "", false
}

func validRoutine(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
