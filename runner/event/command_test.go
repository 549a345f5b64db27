package event

import (
	"testing"
	"time"
)

var timeZero = time.Time{}

func TestParseCommandAcceptsOnlyAStrictFirstLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want string
		ok   bool
	}{
		{"a bare command", "/agents run review", "review", true},
		{"an indented command with a trailing CR", "   /agents run pr-review\r\n", "pr-review", true},
		{"blank lines before the command", "\n\n \t\n/agents run nightly.fix_1", "nightly.fix_1", true},
		{"extra spaces between words", "/agents  run\treview", "review", true},
		{"text after the command on later lines", "/agents run review\nthanks!", "review", true},
		{"a command that is not on the first line", "hello\n/agents run review", "", false},
		{"words after the routine", "/agents run review please", "", false},
		{"no routine", "/agents run", "", false},
		{"a routine with a slash", "/agents run a/b", "", false},
		{"a routine with shell characters", "/agents run $(rm -rf /)", "", false},
		{"a quoted command", "> /agents run review", "", false},
		{"another verb", "/agents stop review", "", false},
		{"a different case", "/Agents run review", "", false},
		{"an empty body", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := ParseCommand(tt.body)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseCommand(%q) = %q, %v; want %q, %v", tt.body, got, ok, tt.want, tt.ok)
			}
		})
	}
}
