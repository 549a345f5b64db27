package render

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// testdata/git.patch is what `git diff --cached -M --full-index --binary` printed (the runner's
// diff options) for an added file with a terminal escape, a binary change, a deletion, a
// change without a final newline, a rename of a path with a space, and a mode change.
func TestParsePatchReadsGitOutput(t *testing.T) {
	patch, err := os.ReadFile("testdata/git.patch")
	if err != nil {
		t.Fatal(err)
	}
	files, err := ParsePatch(patch)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, fmt.Sprintf("%s %q->%q bin=%v modes=%s>%s sim=%d +%d-%d hunks=%d",
			f.Status, f.OldPath, f.NewPath, f.Binary, f.OldMode, f.NewMode, f.Similarity, f.Added, f.Removed, len(f.Hunks)))
	}
	want := []string{
		`added ""->"added.txt" bin=false modes=>100644 sim=0 +2-0 hunks=1`,
		`modified "bin.dat"->"bin.dat" bin=true modes=> sim=0 +0-0 hunks=0`,
		`deleted "gone.txt"->"" bin=false modes=100644> sim=0 +0-1 hunks=1`,
		`modified "keep.txt"->"keep.txt" bin=false modes=> sim=0 +2-2 hunks=1`,
		`renamed "old name.txt"->"new name.txt" bin=false modes=> sim=82 +1-0 hunks=1`,
		`modified "run.sh"->"run.sh" bin=false modes=100644>100755 sim=0 +0-0 hunks=0`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("files:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if l := files[0].Hunks[0].Lines[1]; l.Kind != Added || l.Text != "␛[31mred" || l.NewNo != 2 {
		t.Errorf("added line with an escape = %+v, want the escape visible at new line 2", l)
	}
	keep := files[3].Hunks[0]
	if keep.Header() != "@@ -1,7 +1,7 @@" {
		t.Errorf("header %q", keep.Header())
	}
	last := keep.Lines[len(keep.Lines)-1]
	if last.Kind != NoNewline || last.Class() != "nonl" || last.Text != "No newline at end of file" {
		t.Errorf("last line %+v, want the no-newline marker", last)
	}
	if l := keep.Lines[2]; l.Kind != Added || l.Text != "TWO" || l.OldNo != 0 || l.NewNo != 2 {
		t.Errorf("line 2 = %+v", l)
	}
	if l := keep.Lines[3]; l.Kind != Context || l.OldNo != 3 || l.NewNo != 3 {
		t.Errorf("context line = %+v", l)
	}
	if h := files[4].Hunks[0]; h.Section != "world" || h.Lines[3].NewNo != 6 {
		t.Errorf("rename hunk %+v", h)
	}
	if !files[5].ModeChanged() || files[0].ModeChanged() {
		t.Error("ModeChanged: want true for run.sh only")
	}
}

func TestParsePatchQuotedAndOddPaths(t *testing.T) {
	patch := "From: someone\n\nA preamble line\n" +
		"diff --git \"a/t\\303\\251st\\tx\" \"b/t\\303\\251st\\tx\"\n" +
		"new file mode 100644\n--- /dev/null\n+++ \"b/t\\303\\251st\\tx\"\n@@ -0,0 +1 @@\n+hi\n" +
		"diff --git a/x b/y\nsimilarity index 100%\nrename from x\nrename to y\n" +
		"diff --git a/a b/c b/a b/c\nBinary files a/a b/c and b/a b/c differ\n" +
		"diff --git a/esc\x1b b/esc\x1b\ncopy from esc\x1b\ncopy to \"n\\033[2J\"\n"
	files, err := ParsePatch([]byte(patch))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 {
		t.Fatalf("%d files, want 4: %+v", len(files), files)
	}
	if files[0].NewPath != "tést\tx" || files[0].Status != "added" || files[0].Added != 1 {
		t.Errorf("quoted path: %+v", files[0])
	}
	if files[1].OldPath != "x" || files[1].NewPath != "y" || files[1].Status != "renamed" || files[1].Similarity != 100 {
		t.Errorf("pure rename: %+v", files[1])
	}
	if files[2].Path() != "a b/c" || !files[2].Binary {
		t.Errorf("path with a space: %+v", files[2])
	}
	if files[3].OldPath != "esc␛" || files[3].NewPath != "n␛[2J" || files[3].Status != "copied" {
		t.Errorf("escapes in paths: %+v", files[3])
	}
}

func TestParsePatchErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct{ patch, want string }{
		{"diff --git a/x b/x\n@@ -1,1 +1,1 @@\n+a\n+b\n", "line 4: hunk has more added lines"},
		{"diff --git a/x b/x\n@@ -x +1 @@\n", "line 2: hunk header"},
		{"diff --git a/x b/x\n@@ -1 +1 @@\n?x\n", "line 3: hunk line starts with \"?\""},
		{"diff --git a/x b/x\n@@ -1 +1\n", "no closing @@"},
	} {
		files, err := ParsePatch([]byte(tc.patch))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.patch, err, tc.want)
		}
		if len(files) != 1 {
			t.Errorf("%q: %d files, want the one before the error", tc.patch, len(files))
		}
	}
}

func TestParsePatchBounds(t *testing.T) {
	var b bytes.Buffer
	for i := 0; b.Len() < MaxPatchBytes+1000; i++ {
		fmt.Fprintf(&b, "diff --git a/f%d b/f%d\n--- a/f%d\n+++ b/f%d\n@@ -1,3 +1,3 @@\n ctx\n-old %s\n+new\n ctx\n", i, i, i, i, strings.Repeat("x", 10000))
	}
	files, err := ParsePatch(b.Bytes())
	if !errors.Is(err, ErrPatchTruncated) {
		t.Fatalf("err %v, want ErrPatchTruncated", err)
	}
	lines := 0
	for _, f := range files {
		for _, h := range f.Hunks {
			lines += len(h.Lines)
			for _, l := range h.Lines {
				if len(l.Text) > maxLineBytes+len("…") {
					t.Fatalf("a line of %d bytes kept", len(l.Text))
				}
			}
		}
	}
	if lines > MaxPatchLines || len(files) > MaxPatchFiles || len(files) == 0 {
		t.Fatalf("%d files, %d lines kept", len(files), lines)
	}

	b.Reset()
	for i := 0; i < MaxPatchFiles+5; i++ {
		fmt.Fprintf(&b, "diff --git a/f%d b/f%d\nold mode 100644\nnew mode 100755\n", i, i)
	}
	files, err = ParsePatch(b.Bytes())
	if !errors.Is(err, ErrPatchTruncated) || len(files) != MaxPatchFiles {
		t.Fatalf("%d files, err %v; want %d and ErrPatchTruncated", len(files), err, MaxPatchFiles)
	}

	b.Reset()
	b.WriteString("diff --git a/big b/big\n@@ -0,0 +1,30000 @@\n")
	for i := 0; i < 30000; i++ {
		b.WriteString("+l\n")
	}
	b.WriteString("diff --git a/next b/next\n@@ -1 +1 @@\n-a\n+b\n")
	files, err = ParsePatch(b.Bytes())
	if !errors.Is(err, ErrPatchTruncated) || len(files) != 2 || !files[0].Truncated || !files[1].Truncated ||
		files[0].Added != MaxPatchLines || len(files[1].Hunks) != 0 {
		t.Fatalf("err %v, files %d: want both kept, cut at %d lines", err, len(files), MaxPatchLines)
	}
}

// FuzzParsePatch checks ParsePatch never panics, keeps its bounds, and keeps every line of
// agent text free of terminal escapes. Its kept corpus is testdata/fuzz/FuzzParsePatch.
func FuzzParsePatch(f *testing.F) {
	if b, err := os.ReadFile("testdata/git.patch"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("diff --git \"a/\\303\" b/x\n@@ -1 +1 @@\n-\x1b\n+\x9b\n\\ x\n"))
	f.Fuzz(func(t *testing.T, patch []byte) {
		files, _ := ParsePatch(patch)
		lines := 0
		for _, fd := range files {
			check(t, fd.OldPath)
			check(t, fd.NewPath)
			for _, h := range fd.Hunks {
				check(t, h.Section)
				lines += len(h.Lines)
				for _, l := range h.Lines {
					check(t, l.Text)
				}
			}
		}
		if lines > MaxPatchLines || len(files) > MaxPatchFiles {
			t.Fatalf("%d files, %d lines", len(files), lines)
		}
	})
}

func check(t *testing.T, s string) {
	t.Helper()
	if Visible(s) != s {
		t.Fatalf("%q has invisible characters", s)
	}
}

// BenchmarkParsePatch parses a patch of MaxPatchBytes (about 1,900 files of ten hunks): the
// most it reads, of which it keeps MaxPatchLines lines.
func BenchmarkParsePatch(b *testing.B) {
	var buf bytes.Buffer
	for i := 0; buf.Len() < MaxPatchBytes; i++ {
		fmt.Fprintf(&buf, "diff --git a/dir/file%d.go b/dir/file%d.go\nindex 1111111111111111111111111111111111111111..2222222222222222222222222222222222222222 100644\n--- a/dir/file%d.go\n+++ b/dir/file%d.go\n", i, i, i, i)
		for h := 0; h < 10; h++ {
			fmt.Fprintf(&buf, "@@ -%d,5 +%d,7 @@ func f() {\n", 10+h*20, 10+h*22)
			buf.WriteString(" \tctx := context.Background()\n \tx := compute(ctx)\n-\treturn x\n+\tif x == nil {\n+\t\treturn errNil\n+\t}\n \treturn nil\n }\n")
		}
	}
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePatch(buf.Bytes()); err != nil && !errors.Is(err, ErrPatchTruncated) {
			b.Fatal(err)
		}
	}
}
