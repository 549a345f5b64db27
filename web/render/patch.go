package render

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Bounds of ParsePatch. A patch is agent-written and can be as large as the runner's patch
// limit; a page shows the beginning of it and says the rest was left off.
const (
	// MaxPatchBytes is how much of a patch is parsed; the rest is left off.
	MaxPatchBytes = 4 << 20
	// MaxPatchLines is how many hunk lines are kept over all files.
	MaxPatchLines = 20000
	// MaxPatchFiles is how many files are kept.
	MaxPatchFiles = 2000
	// maxLineBytes bounds one shown line: a minified file is one long line.
	maxLineBytes = 4096
)

// ErrPatchTruncated says ParsePatch left part of the patch off (see the bounds above); the
// files it returns are the beginning, and a FileDiff cut short has Truncated set.
var ErrPatchTruncated = errors.New("patch is too large to show whole")

// LineKind is what a hunk line does.
type LineKind byte

// Line kinds.
const (
	Context LineKind = ' '
	Added   LineKind = '+'
	Removed LineKind = '-'
	// NoNewline is git's "\ No newline at end of file" marker after the line it concerns.
	NoNewline LineKind = '\\'
)

// Line is one line of a hunk. OldNo and NewNo are its 1-based line numbers on each side, 0 on
// the side it is not on. Text has no prefix, no line break, and terminal escapes made visible.
type Line struct {
	Kind         LineKind
	OldNo, NewNo int
	Text         string
}

// Class names the line's kind for a style sheet: ctx, add, del, nonl.
func (l Line) Class() string {
	switch l.Kind {
	case Added:
		return "add"
	case Removed:
		return "del"
	case NoNewline:
		return "nonl"
	}
	return "ctx"
}

// Hunk is one "@@ -a,b +c,d @@ section" block.
type Hunk struct {
	OldStart, OldLines int
	NewStart, NewLines int
	// Section is the text git prints after the second @@ (the enclosing function, often).
	Section string
	Lines   []Line
}

// Header is the hunk's @@ line as git prints it.
func (h Hunk) Header() string {
	s := fmt.Sprintf("@@ -%d,%d +%d,%d @@", h.OldStart, h.OldLines, h.NewStart, h.NewLines)
	if h.Section != "" {
		s += " " + h.Section
	}
	return s
}

// FileDiff is one file of a patch.
type FileDiff struct {
	// OldPath and NewPath are the paths without git's a/ and b/; an added file has no OldPath,
	// a deleted one no NewPath.
	OldPath, NewPath string
	// Status is added, deleted, renamed, copied or modified.
	Status string
	// OldMode and NewMode are set when the mode is shown: a mode change, a new or deleted file.
	OldMode, NewMode string
	// Similarity is a rename's or copy's similarity index in percent.
	Similarity int
	Binary     bool
	Hunks      []Hunk
	// Added and Removed count the lines kept in Hunks.
	Added, Removed int
	// Truncated says some of this file's hunks or lines were left off.
	Truncated bool
}

// Path is the file's path as it is after the change (before it, for a deleted file).
func (f FileDiff) Path() string {
	if f.NewPath != "" {
		return f.NewPath
	}
	return f.OldPath
}

// ModeChanged says the file's mode changed (not merely a new or deleted file's mode).
func (f FileDiff) ModeChanged() bool {
	return f.OldMode != "" && f.NewMode != "" && f.OldMode != f.NewMode
}

// ParsePatch reads a git patch (git diff output, with or without --binary) into its files.
// Text outside a file's section (a commit message, say) is skipped. Bounds: the first
// MaxPatchBytes bytes, MaxPatchFiles files and MaxPatchLines hunk lines are kept, and then the
// error is ErrPatchTruncated. A hunk header that does not parse, or a hunk line of unknown
// kind, is an error naming the line; the files before it are returned with it.
func ParsePatch(patch []byte) ([]FileDiff, error) {
	p := patchParser{}
	if len(patch) > MaxPatchBytes {
		cut := patch[:MaxPatchBytes]
		if i := bytes.LastIndexByte(cut, '\n'); i >= 0 {
			cut = cut[:i+1]
		}
		patch, p.truncated = cut, true
	}
	// One conversion: the lines are substrings of it, and the kept texts share its memory.
	text := string(patch)
	for lineNo := 1; len(text) > 0; lineNo++ {
		var line string
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			line, text = text, ""
		}
		if err := p.line(strings.TrimSuffix(line, "\r")); err != nil {
			p.finish()
			return p.files, fmt.Errorf("patch line %d: %w", lineNo, err)
		}
		if p.stop {
			break
		}
	}
	p.finish()
	if p.truncated {
		return p.files, ErrPatchTruncated
	}
	return p.files, nil
}

type patchParser struct {
	files     []FileDiff
	cur       *FileDiff
	hunk      *Hunk
	oldLeft   int // lines the current hunk still has on each side
	newLeft   int
	oldNo     int
	newNo     int
	inBinary  bool // inside a "GIT binary patch" block
	lines     int  // hunk lines kept so far
	truncated bool
	stop      bool
}

func (p *patchParser) line(s string) error {
	if p.hunk != nil && (p.oldLeft > 0 || p.newLeft > 0) {
		return p.hunkLine(s)
	}
	if p.hunk != nil && strings.HasPrefix(s, `\`) { // "\ No newline at end of file" ends a hunk
		p.add(Line{Kind: NoNewline, Text: Visible(strings.TrimSpace(s[1:]))})
		return nil
	}
	p.closeHunk()
	if strings.HasPrefix(s, "diff --git ") {
		p.finish()
		if len(p.files) >= MaxPatchFiles {
			p.truncated, p.stop = true, true
			return nil
		}
		old, nw := splitGitPaths(s[len("diff --git "):])
		p.cur = &FileDiff{OldPath: old, NewPath: nw, Status: "modified"}
		p.inBinary = false
		return nil
	}
	if p.cur == nil || p.inBinary {
		return nil // preamble, or the base85 lines of a binary patch
	}
	f := p.cur
	switch {
	case strings.HasPrefix(s, "@@"):
		return p.openHunk(s)
	case strings.HasPrefix(s, "--- "):
		if path, ok := sidePath(s[4:], "a/"); ok {
			f.OldPath = path
		} else {
			f.OldPath, f.Status = "", "added"
		}
	case strings.HasPrefix(s, "+++ "):
		if path, ok := sidePath(s[4:], "b/"); ok {
			f.NewPath = path
		} else {
			f.NewPath, f.Status = "", "deleted"
		}
	case strings.HasPrefix(s, "new file mode "):
		f.NewMode, f.Status = s[len("new file mode "):], "added"
	case strings.HasPrefix(s, "deleted file mode "):
		f.OldMode, f.Status = s[len("deleted file mode "):], "deleted"
	case strings.HasPrefix(s, "old mode "):
		f.OldMode = s[len("old mode "):]
	case strings.HasPrefix(s, "new mode "):
		f.NewMode = s[len("new mode "):]
	case strings.HasPrefix(s, "rename from "):
		f.OldPath, f.Status = unquotePath(s[len("rename from "):]), "renamed"
	case strings.HasPrefix(s, "rename to "):
		f.NewPath, f.Status = unquotePath(s[len("rename to "):]), "renamed"
	case strings.HasPrefix(s, "copy from "):
		f.OldPath, f.Status = unquotePath(s[len("copy from "):]), "copied"
	case strings.HasPrefix(s, "copy to "):
		f.NewPath, f.Status = unquotePath(s[len("copy to "):]), "copied"
	case strings.HasPrefix(s, "similarity index "):
		f.Similarity, _ = strconv.Atoi(strings.TrimSuffix(s[len("similarity index "):], "%"))
	case s == "GIT binary patch":
		f.Binary, p.inBinary = true, true
	case strings.HasPrefix(s, "Binary files ") && strings.HasSuffix(s, " differ"):
		f.Binary = true
	}
	return nil
}

func (p *patchParser) openHunk(s string) error {
	var h Hunk
	rest, ok := strings.CutPrefix(s, "@@ -")
	if !ok {
		return fmt.Errorf("hunk header %q: want @@ -a,b +c,d @@", clip(s))
	}
	ranges, section, ok := strings.Cut(rest, " @@")
	if !ok {
		return fmt.Errorf("hunk header %q: no closing @@", clip(s))
	}
	oldR, newR, ok := strings.Cut(ranges, " +")
	var err1, err2 error
	if ok {
		h.OldStart, h.OldLines, err1 = hunkRange(oldR)
		h.NewStart, h.NewLines, err2 = hunkRange(newR)
	}
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("hunk header %q: bad line ranges", clip(s))
	}
	h.Section = Visible(clip(strings.TrimPrefix(section, " ")))
	p.cur.Hunks = append(p.cur.Hunks, h)
	p.hunk = &p.cur.Hunks[len(p.cur.Hunks)-1]
	p.oldLeft, p.newLeft = h.OldLines, h.NewLines
	p.oldNo, p.newNo = h.OldStart, h.NewStart
	return nil
}

// hunkRange parses "start,count" or "start" (a count of 1).
func hunkRange(s string) (start, count int, err error) {
	a, b, has := strings.Cut(s, ",")
	if start, err = strconv.Atoi(a); err != nil || start < 0 {
		return 0, 0, errors.New("bad start")
	}
	count = 1
	if has {
		if count, err = strconv.Atoi(b); err != nil || count < 0 {
			return 0, 0, errors.New("bad count")
		}
	}
	return start, count, nil
}

func (p *patchParser) hunkLine(s string) error {
	// Some tools strip the single space of an empty context line.
	kind := byte(' ')
	if s != "" {
		kind = s[0]
		s = s[1:]
	}
	l := Line{Kind: LineKind(kind)}
	if p.lines < MaxPatchLines { // a line past the bound is counted, not kept
		l.Text = Visible(clip(s))
	}
	switch l.Kind {
	case Context:
		if p.oldLeft == 0 || p.newLeft == 0 {
			return errors.New("hunk has more context lines than its header counts")
		}
		l.OldNo, l.NewNo = p.oldNo, p.newNo
		p.oldNo, p.newNo, p.oldLeft, p.newLeft = p.oldNo+1, p.newNo+1, p.oldLeft-1, p.newLeft-1
	case Added:
		if p.newLeft == 0 {
			return errors.New("hunk has more added lines than its header counts")
		}
		l.NewNo = p.newNo
		p.newNo, p.newLeft = p.newNo+1, p.newLeft-1
	case Removed:
		if p.oldLeft == 0 {
			return errors.New("hunk has more removed lines than its header counts")
		}
		l.OldNo = p.oldNo
		p.oldNo, p.oldLeft = p.oldNo+1, p.oldLeft-1
	case NoNewline:
		l.Text = Visible(strings.TrimSpace(l.Text))
	default:
		return fmt.Errorf("hunk line starts with %q, want one of ' ', '+', '-', '\\'", Visible(string(rune(kind))))
	}
	p.add(l)
	return nil
}

// add keeps l unless MaxPatchLines are kept already.
func (p *patchParser) add(l Line) {
	if p.lines >= MaxPatchLines {
		p.truncated, p.cur.Truncated = true, true
		return
	}
	p.lines++
	p.hunk.Lines = append(p.hunk.Lines, l)
	switch l.Kind {
	case Added:
		p.cur.Added++
	case Removed:
		p.cur.Removed++
	}
}

func (p *patchParser) closeHunk() {
	if p.hunk != nil && len(p.hunk.Lines) == 0 && p.cur.Truncated {
		p.cur.Hunks = p.cur.Hunks[:len(p.cur.Hunks)-1] // a hunk left off whole
	}
	p.hunk = nil
}

func (p *patchParser) finish() {
	p.closeHunk()
	if p.cur != nil {
		p.files = append(p.files, *p.cur)
		p.cur = nil
	}
}

// clip bounds one line of agent text.
func clip(s string) string {
	if len(s) <= maxLineBytes {
		return s
	}
	return s[:maxLineBytes] + "…"
}

// sidePath reads the path of a ---/+++ line: ok is false for /dev/null.
func sidePath(s, prefix string) (string, bool) {
	// git ends a path containing spaces with a tab on these lines.
	s, _, _ = strings.Cut(s, "\t")
	if s == "/dev/null" {
		return "", false
	}
	s = unquotePath(s)
	return strings.TrimPrefix(s, prefix), true
}

// splitGitPaths reads the "a/old b/new" of a diff --git line. Quoted paths are exact; unquoted
// ones may contain spaces, so the split that gives equal paths is taken (the ---, +++ and
// rename lines that follow correct the paths of a rename).
func splitGitPaths(s string) (old, nw string) {
	if strings.HasPrefix(s, `"`) {
		if end := closingQuote(s); end > 0 {
			old = strings.TrimPrefix(unquotePath(s[:end+1]), "a/")
			nw = strings.TrimPrefix(unquotePath(strings.TrimSpace(s[end+1:])), "b/")
			return Visible(old), Visible(nw)
		}
	}
	if i := strings.Index(s, ` "b/`); i >= 0 {
		return Visible(strings.TrimPrefix(s[:i], "a/")), Visible(strings.TrimPrefix(unquotePath(s[i+1:]), "b/"))
	}
	if n := len(s); n%2 == 1 {
		a, b := s[:n/2], s[n/2+1:]
		if s[n/2] == ' ' && strings.HasPrefix(a, "a/") && strings.HasPrefix(b, "b/") && a[2:] == b[2:] {
			return Visible(a[2:]), Visible(b[2:])
		}
	}
	a, b, _ := strings.Cut(s, " b/")
	return Visible(strings.TrimPrefix(a, "a/")), Visible(b)
}

// closingQuote is the index of the quote that ends the C-quoted string at s's start, or -1.
func closingQuote(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// unquotePath undoes git's C-style quoting of a path ("a/tab\there", octal bytes for
// non-ASCII); an unquoted path is returned as it is. The result has terminal escapes made
// visible.
func unquotePath(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return Visible(s)
	}
	s = s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch c = s[i]; c {
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'v':
			b.WriteByte('\v')
		case 'f':
			b.WriteByte('\f')
		case 'r':
			b.WriteByte('\r')
		case '0', '1', '2', '3':
			if i+2 < len(s) {
				if n, err := strconv.ParseUint(s[i:i+3], 8, 8); err == nil {
					b.WriteByte(byte(n))
					i += 2
					continue
				}
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return Visible(b.String())
}
