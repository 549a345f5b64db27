package overview

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultSince is how far back a review looks when no time is given.
const DefaultSince = 24 * time.Hour

// ParseSince reads the start of a review as a person types it: a duration back from now
// ("24h", "90m", "3d" for days), a date ("2026-12-04", midnight UTC) or an RFC 3339 time.
// "" is DefaultSince back from now.
func ParseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return now.Add(-DefaultSince), nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 && n <= 3660 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("since %q: give how far back, a positive duration such as 24h or 3d", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("since %q: want a duration back from now (24h, 90m, 3d), a date (2006-01-02) or a time (2006-01-02T15:04:05Z)", s)
}

// FirstParagraph is the start of a summary up to its first paragraph of text: headings before
// that paragraph are kept with it, blocks after it are left out.
func FirstParagraph(summary string) string {
	var out []string
	for _, block := range strings.Split(strings.ReplaceAll(summary, "\r\n", "\n"), "\n\n") {
		block = strings.Trim(block, "\n")
		if block == "" {
			continue
		}
		out = append(out, block)
		if !strings.HasPrefix(block, "#") || strings.Contains(block, "\n") {
			break
		}
	}
	return strings.Join(out, "\n\n")
}
