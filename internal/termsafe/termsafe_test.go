package termsafe

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTextEscapesWhatATerminalWouldObey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, text, line string
	}{
		{"plain text is unchanged", "tick 1: ok ✓ – 日本", "tick 1: ok ✓ – 日本", "tick 1: ok ✓ – 日本"},
		{"tabs stay", "a\tb", "a\tb", "a\tb"},
		{"newlines stay in text, not in a line", "a\nb\n", "a\nb\n", `a\x0ab\x0a`},
		{"OSC 52 clipboard write", "\x1b]52;c;aGk=\a", `\x1b]52;c;aGk=\x07`, `\x1b]52;c;aGk=\x07`},
		{"screen clear", "\x1b[2J", `\x1b[2J`, `\x1b[2J`},
		{"OSC 8 hyperlink", "\x1b]8;;https://evil\x1b\\x\x1b]8;;\x1b\\", `\x1b]8;;https://evil\x1b\x\x1b]8;;\x1b\`, `\x1b]8;;https://evil\x1b\x\x1b]8;;\x1b\`},
		{"carriage return overwrites a line", "ok\rFAIL", `ok\x0dFAIL`, `ok\x0dFAIL`},
		{"backspace and NUL", "a\bb\x00", `a\x08b\x00`, `a\x08b\x00`},
		{"DEL", "a\x7f", `a\x7f`, `a\x7f`},
		{"C1 CSI as a rune", "a\u009b2J", `a\u009b2J`, `a\u009b2J`},
		{"C1 NEL", "\u0085", `\u0085`, `\u0085`},
		{"a lone C1 byte is not UTF-8", "a\x9b2J", `a\x9b2J`, `a\x9b2J`},
		{"invalid UTF-8", "\xff\xfe ok", `\xff\xfe ok`, `\xff\xfe ok`},
		{"a truncated rune", "日"[:2], `\xe6\x97`, `\xe6\x97`},
		{"bidi override", "file\u202Etxt.exe", `file\u202etxt.exe`, `file\u202etxt.exe`},
		{"bidi isolate", "\u2066x\u2069", `\u2066x\u2069`, `\u2066x\u2069`},
		{"backslashes stay as they are", `C:\dir\x`, `C:\dir\x`, `C:\dir\x`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Text(tt.in); got != tt.text {
				t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.text)
			}
			if got := Line(tt.in); got != tt.line {
				t.Errorf("Line(%q) = %q, want %q", tt.in, got, tt.line)
			}
		})
	}
}

// checkSafe is the property every output must have: nothing a terminal acts on is left.
func checkSafe(t *testing.T, in, out string, keepNewline bool) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("escape(%q) = %q is not valid UTF-8", in, out)
	}
	for _, r := range out {
		switch {
		case r == '\t', r == '\n' && keepNewline:
		case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
			t.Fatalf("escape(%q) = %q keeps %U", in, out, r)
		}
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "hello", "\x1b]52;c;aGk=\a\x1b[2J", "\u009b31m", "\xff", "a\u202eb", "x\ny\tz\r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		text, line := Text(s), Line(s)
		checkSafe(t, s, text, true)
		checkSafe(t, s, line, false)
		if strings.Count(text, "\n") != strings.Count(s, "\n") {
			t.Fatalf("Text(%q) = %q changed the number of lines", s, text)
		}
		// What is already safe passes through untouched, so escaping twice changes nothing.
		if Text(text) != text || Line(line) != line {
			t.Fatalf("escaping %q is not idempotent: %q, %q", s, Text(text), Line(line))
		}
	})
}

func BenchmarkLineClean(b *testing.B) {
	s := strings.Repeat("an ordinary log line of an agent ", 4)
	b.ReportAllocs()
	for b.Loop() {
		_ = Line(s)
	}
}
