package overview_test

import (
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/overview"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"", now.Add(-24 * time.Hour)},
		{"24h", now.Add(-24 * time.Hour)},
		{" 90m ", now.Add(-90 * time.Minute)},
		{"3d", now.AddDate(0, 0, -3)},
		{"2026-12-04", time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)},
		{"2026-12-04T22:30:00+01:00", time.Date(2026, 12, 4, 21, 30, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		got, err := overview.ParseSince(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseSince(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"-2h", "0s", "yesterday", "0d", "d", "12/04/2026"} {
		if _, err := overview.ParseSince(bad, now); err == nil || !strings.Contains(err.Error(), "since") {
			t.Errorf("ParseSince(%q) = %v, want an error saying what it takes", bad, err)
		}
	}
}

func TestFirstParagraph(t *testing.T) {
	tests := map[string]string{
		"# Fixed the flaky tests\n\nThree tests waited.\nOn sleeps.\n\nMore.": "# Fixed the flaky tests\n\nThree tests waited.\nOn sleeps.",
		"Just text.\n\n# Heading": "Just text.",
		"# A\n\n## B\n\nC\n\nD":   "# A\n\n## B\n\nC",
		"# Only a heading":        "# Only a heading",
		"":                        "",
	}
	for in, want := range tests {
		if got := overview.FirstParagraph(in); got != want {
			t.Errorf("FirstParagraph(%q) = %q, want %q", in, got, want)
		}
	}
}
