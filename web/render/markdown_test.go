package render

import (
	"strings"
	"testing"
)

func TestMarkdownRendersGFM(t *testing.T) {
	t.Parallel()
	src := "# Title\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n~~gone~~ see https://example.com\n\n- [x] done\n- [ ] todo\n\n```go\nx := 1\n```\n"
	got := string(Markdown([]byte(src)))
	for _, want := range []string{"<h1>Title</h1>", "<table>", `<td align="left">1</td>`, "<del>gone</del>",
		`href="https://example.com"`, "☑ done", "☐ todo", `<code class="language-go">`} {
		if !strings.Contains(got, want) {
			t.Errorf("Markdown output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "<input") {
		t.Errorf("task boxes must not be inputs:\n%s", got)
	}
}

func TestMarkdownNeutralizesHostileInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		src    string
		banned []string
	}{
		{"a script tag is dropped", "hi <script>alert(1)</script>", []string{"<script", "alert(1)</script"}},
		{"a style tag is dropped", "<style>body{display:none}</style>", []string{"<style"}},
		{"an iframe is dropped", `<iframe src="https://evil.example"></iframe>`, []string{"<iframe"}},
		{"an event handler is dropped", `<p onclick="x()">p</p> <img src=x onerror=alert(1)>`, []string{"onclick", "onerror", "<img"}},
		{"a form is dropped", `<form action="/api/v1/runs"><button>go</button></form>`, []string{"<form", "<button"}},
		{"a javascript: link loses its href", "[click](javascript:alert(1))", []string{"javascript:"}},
		{"a JaVaScRiPt: link with entities loses its href", "[c](jav&#x61;script:alert(1))", []string{"script:alert"}},
		{"a data: link loses its href", "[c](data:text/html;base64,PHNjcmlwdD4=)", []string{"data:"}},
		{"a vbscript: link loses its href", "[c](vbscript:msgbox)", []string{"vbscript:"}},
		{"an image is not loaded", "![logo](https://tracker.example/p.png)", []string{"<img"}},
		{"a relative link is dropped", "[cancel](/api/v1/runs/1/cancel)", []string{`href="/api`}},
		{"an autolink to javascript is not a link", "<javascript:alert(1)>", []string{`href="javascript`}},
		{"terminal escapes are visible", "red \x1b[31mtext\x1b]0;title\x07 \u009b2J", []string{"\x1b", "\x07", "\u009b"}},
		{"bidi overrides are visible", "access \u202egnp.exe\u202c \u2066x\u2069", []string{"\u202e", "\u202c", "\u2066"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := string(Markdown([]byte(tt.src)))
			for _, b := range tt.banned {
				if strings.Contains(strings.ToLower(got), strings.ToLower(b)) {
					t.Errorf("output holds %q:\n%s", b, got)
				}
			}
		})
	}
}

func TestMarkdownLinksAreHardened(t *testing.T) {
	t.Parallel()
	got := string(Markdown([]byte("[x](https://example.com/a) and ![shot](https://example.com/s.png)")))
	if n := strings.Count(got, `rel="nofollow noreferrer noopener"`); n != 2 {
		t.Errorf("want 2 links with rel nofollow noreferrer noopener, got %d:\n%s", n, got)
	}
	if !strings.Contains(got, `[image: shot]`) {
		t.Errorf("image is not rendered as a labelled link:\n%s", got)
	}
}

func TestMarkdownMakesEscapesVisible(t *testing.T) {
	t.Parallel()
	got := string(Markdown([]byte("a\x1b[31mb")))
	if !strings.Contains(got, "a\u241b[31mb") {
		t.Errorf("ESC is not shown as ␛: %q", got)
	}
}

func TestMarkdownCapsInput(t *testing.T) {
	t.Parallel()
	line := strings.Repeat("word ", 20) + "\n"
	src := strings.Repeat(line, MaxMarkdownBytes/len(line)+10)
	got := string(Markdown([]byte(src)))
	if !strings.Contains(got, "Report truncated") {
		t.Errorf("an over-long report carries no truncation note")
	}
	if len(got) > 2*MaxMarkdownBytes {
		t.Errorf("output is %d bytes, more than twice the cap", len(got))
	}
}

func FuzzMarkdown(f *testing.F) {
	for _, s := range []string{"# t\n\n<script>x</script>", "[a](javascript:x)", "| a |\n|---|\n| b |", "![i](https://x/y)", "- [ ] t\n\x1b[0m"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		got := strings.ToLower(string(Markdown(src)))
		for _, b := range []string{"<script", "<iframe", "<img", "<style", "<form", "<input", `href="javascript:`, `href="data:`} {
			if strings.Contains(got, b) {
				t.Fatalf("output holds %q: %s", b, got)
			}
		}
		if strings.ContainsRune(got, 0x1b) {
			t.Fatalf("output holds ESC")
		}
	})
}
