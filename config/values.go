package config

import (
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Built-in defaults merged into agents that set neither the field nor `defaults:`.
const (
	DefaultPullPolicy = "if-missing"
	DefaultTimeout    = 30 * time.Minute
	DefaultCPUs       = 1.0
	DefaultMemory     = 2 << 30 // 2g
	DefaultPids       = 512
	DefaultMaxFanOut  = 256
)

// MinMemory is the smallest memory limit Docker accepts (6 MiB): a bare number is bytes, so
// `memory: 2000` is 2 kB, which the engine would refuse only when the job starts.
const MinMemory = 6 << 20

// HostMemory returns the memory of the machine that loads the routines (0: unknown); a limit
// above it could never be used. Tests replace it.
var HostMemory = physicalMemory

// Pull policies for agent images.
const (
	PullNever     = "never"
	PullIfMissing = "if-missing"
	PullAlways    = "always"
)

// PullRequestTypes are the pull_request activity types GitHub sends, the values `types:` accepts.
var PullRequestTypes = []string{
	"assigned", "unassigned", "labeled", "unlabeled", "opened", "edited", "closed", "reopened",
	"synchronize", "converted_to_draft", "ready_for_review", "locked", "unlocked",
	"review_requested", "review_request_removed", "auto_merge_enabled", "auto_merge_disabled",
	"milestoned", "demilestoned", "enqueued", "dequeued",
}

// IssueCommentTypes are the issue_comment activity types GitHub sends.
var IssueCommentTypes = []string{"created", "edited", "deleted"}

// ParseSize reads a byte size: a plain number of bytes (1024) or a number with a binary
// suffix k, m, g or t (512m, 1.5g), optionally followed by b or ib (2GB, 2GiB).
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	t = strings.TrimSuffix(t, "ib")
	if t != "" && t[len(t)-1] == 'b' {
		t = t[:len(t)-1]
	}
	mult := 1.0
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	if t == "" || strings.ContainsAny(t, "eE+-_xXpP") {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	v := f * mult
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v), nil
}

// FormatSize writes a byte size the way ParseSize reads it, in the largest unit that keeps it
// short: 10m, 1.5g, 512k, 100 (bytes).
func FormatSize(n int64) string {
	units := []struct {
		suffix string
		size   int64
	}{{"t", 1 << 40}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}}
	for _, u := range units {
		if n >= u.size {
			return strconv.FormatFloat(math.Round(float64(n)/float64(u.size)*10)/10, 'f', -1, 64) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// parseDuration reads a Go duration (30m, 1h30m, 90s) that must be positive.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not positive", s)
	}
	return d, nil
}

// cronParser is the standard 5-field parser plus @daily-style descriptors, what GitHub users know.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron parses a schedule's cron expression the way the daemon will schedule it.
func ParseCron(spec string) (cron.Schedule, error) {
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, fmt.Errorf("put the time zone in `timezone:`, not in the cron expression")
	}
	return cronParser.Parse(spec)
}

// checkHostPort checks a network allow entry: host:port where host is a name, an IP, or
// *.domain, and port is 1..65535.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port (like api.openai.com:443 or \"*.github.com:443\")", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q has port %q; a port is a number from 1 to 65535", s, port)
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	name := strings.TrimPrefix(host, "*.")
	if name == "" {
		return fmt.Errorf("%q has no host name", s)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%q has an invalid host name", s)
		}
		for _, c := range label {
			if !(c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				if c == '*' {
					return fmt.Errorf("%q: a wildcard is allowed only as a leading \"*.\"", s)
				}
				return fmt.Errorf("%q has an invalid host name (character %q)", s, c)
			}
		}
	}
	return nil
}

// isIdent reports whether s is a name usable in expressions and file names:
// a letter or _, then letters, digits, _ or -.
func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c == '-' || c >= '0' && c <= '9'):
		default:
			return false
		}
	}
	return true
}

// isEnvName reports whether s is a POSIX environment variable name.
func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && c >= '0' && c <= '9':
		default:
			return false
		}
	}
	return true
}

// isRoutineName reports whether s can name a routine: it appears in branch names and URLs.
func isRoutineName(s string) bool {
	if s == "" || s[0] == '.' || s[0] == '-' {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return !strings.Contains(s, "..")
}

// isExpr reports whether s is exactly one `${{ … }}` expression.
func isExpr(s string) bool {
	t := strings.TrimSpace(s)
	return strings.HasPrefix(t, "${{") && strings.HasSuffix(t, "}}") && len(t) >= 5 &&
		strings.Count(t, "${{") == 1
}

// suggest returns the candidate closest to s, or "" when none is close enough to be a typo.
// Case and _ versus - are ignored, the usual slips in YAML keys.
func suggest(s string, candidates []string) string {
	norm := func(x string) string { return strings.ReplaceAll(strings.ToLower(x), "_", "-") }
	ns := norm(s)
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := levenshtein(ns, norm(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := (len(s) + 2) / 3
	if len(s) < 4 && len(best) == len(s) {
		limit = 0 // "y" is not a typo of "x", but "bb" may be one of "b"
	}
	if bestD <= limit && best != "" {
		return best
	}
	return ""
}

// levenshtein is the optimal-string-alignment distance: edits plus swaps of neighbours.
func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1) // a swap of neighbours is one typo
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// didYouMean formats a suggestion suffix, or lists the valid choices when none is close.
func didYouMean(s string, candidates []string) string {
	if m := suggest(s, candidates); m != "" {
		return fmt.Sprintf("; did you mean %q?", m)
	}
	if len(candidates) == 0 {
		return ""
	}
	if len(candidates) > 12 {
		return "; valid: " + strings.Join(candidates[:12], ", ") + ", …"
	}
	return "; valid: " + strings.Join(candidates, ", ")
}

// IsRoutineName reports whether s is a valid routine name: letters, digits, '.', '_' and '-',
// not starting with '.' or '-' and without "..". Callers outside the loader use it to refuse
// a name no config can hold before they look for it.
func IsRoutineName(s string) bool { return isRoutineName(s) }
