package workspace

import (
	"fmt"
	"strconv"
	"strings"
)

// PatchFile is one file a `git diff` patch touches, as read from the patch's own headers.
type PatchFile struct {
	// Path is the file's path after the change (its old path when it is deleted).
	Path string
	// OldPath is set for renames and copies.
	OldPath string
	// Mode is the file's mode after the change ("100644", "100755", "120000" for a symlink,
	// "160000" for a submodule); empty when the file is deleted or the patch does not say (a
	// pure rename keeps the mode OldPath had).
	Mode string
	// Target is where a symlink the patch creates or changes points to.
	Target string
}

// IsSymlink reports whether the patch leaves a symbolic link at Path.
func (f PatchFile) IsSymlink() bool { return f.Mode == "120000" }

// PatchFiles lists what patch (as Changes or Merge make it: `git diff --binary --full-index`)
// touches, with each symlink's target, so that a caller can judge a patch before applying it.
// It fails on headers it cannot read for sure rather than guess.
func PatchFiles(patch []byte) ([]PatchFile, error) {
	var out []PatchFile
	var cur *PatchFile
	var deleted, inHunk bool
	finish := func() {
		if cur != nil {
			if deleted {
				cur.Mode = ""
			}
			out = append(out, *cur)
		}
	}
	lines := strings.Split(string(patch), "\n")
	for n, line := range lines {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("patch line %d: %s", n+1, fmt.Sprintf(format, args...))
		}
		if strings.HasPrefix(line, "diff --git ") {
			finish()
			a, b, err := diffHeaderPaths(strings.TrimPrefix(line, "diff --git "))
			if err != nil {
				return nil, bad("%v", err)
			}
			cur = &PatchFile{Path: b}
			if a != b {
				cur.OldPath = a
			}
			deleted, inHunk = false, false
			continue
		}
		if cur == nil {
			continue
		}
		if inHunk {
			// A symlink's blob is its target, without a newline.
			if cur.IsSymlink() && strings.HasPrefix(line, "+") && cur.Target == "" {
				cur.Target = line[1:]
			}
			continue
		}
		key, rest, _ := strings.Cut(line, " ")
		switch {
		case strings.HasPrefix(line, "@@"), line == "GIT binary patch":
			inHunk = true
		case strings.HasPrefix(line, "new file mode "), strings.HasPrefix(line, "new mode "):
			cur.Mode = line[strings.LastIndexByte(line, ' ')+1:]
		case strings.HasPrefix(line, "old mode "):
			if cur.Mode == "" {
				cur.Mode = rest // overwritten by the "new mode" line that follows
			}
		case strings.HasPrefix(line, "deleted file mode "):
			deleted = true
		case key == "index":
			if f := strings.Fields(rest); len(f) == 2 && cur.Mode == "" {
				cur.Mode = f[1]
			}
		case strings.HasPrefix(line, "rename from "), strings.HasPrefix(line, "copy from "):
			p, err := patchPath(line[strings.Index(line, "from ")+5:])
			if err != nil {
				return nil, bad("%v", err)
			}
			cur.OldPath = p
		case strings.HasPrefix(line, "rename to "), strings.HasPrefix(line, "copy to "):
			p, err := patchPath(line[strings.Index(line, "to ")+3:])
			if err != nil {
				return nil, bad("%v", err)
			}
			cur.Path = p
		case key == "+++" && rest != "/dev/null":
			p, err := patchPath(rest)
			if err != nil || !strings.HasPrefix(p, "b/") {
				return nil, bad("cannot read the new path in %q", line)
			}
			cur.Path = p[2:]
		case key == "---" && rest != "/dev/null":
			p, err := patchPath(rest)
			if err != nil || !strings.HasPrefix(p, "a/") {
				return nil, bad("cannot read the old path in %q", line)
			}
			if deleted {
				cur.Path = p[2:]
			}
		}
	}
	finish()
	return out, nil
}

// diffHeaderPaths reads "a/X b/Y" of a `diff --git` line. Unquoted names with spaces are
// ambiguous unless both are the same file (renames say their names on later lines, which win).
func diffHeaderPaths(h string) (a, b string, err error) {
	if strings.HasPrefix(h, `"`) || strings.HasSuffix(h, `"`) {
		first, rest, err := splitQuoted(h)
		if err != nil {
			return "", "", err
		}
		second, err := patchPath(strings.TrimPrefix(rest, " "))
		if err != nil {
			return "", "", err
		}
		return strings.TrimPrefix(first, "a/"), strings.TrimPrefix(second, "b/"), nil
	}
	if n := len(h); n >= 7 && (n-1)%2 == 0 {
		half := (n - 1) / 2
		if h[:half] == "a/"+h[half+3:] && h[half:half+3] == " b/" {
			return h[2:half], h[half+3:], nil
		}
	}
	// Different names: the rename or copy lines that follow give them.
	if i := strings.Index(h, " b/"); strings.HasPrefix(h, "a/") && i > 0 {
		return h[2:i], h[i+3:], nil
	}
	return "", "", fmt.Errorf("cannot read the paths of diff header %q", h)
}

// splitQuoted reads one path (quoted or not) at the start of s and returns the rest.
func splitQuoted(s string) (string, string, error) {
	if !strings.HasPrefix(s, `"`) {
		i := strings.Index(s, " ")
		if i < 0 {
			return "", "", fmt.Errorf("cannot read path in %q", s)
		}
		return s[:i], s[i:], nil
	}
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			p, err := patchPath(s[:i+1])
			return p, s[i+1:], err
		}
	}
	return "", "", fmt.Errorf("unterminated quoted path in %q", s)
}

// patchPath reads one path as git writes it in a patch: as is, or C-quoted when it holds
// special characters (git's octal escapes are Go's too).
func patchPath(s string) (string, error) {
	s = strings.TrimSuffix(s, "\t")
	if !strings.HasPrefix(s, `"`) {
		return s, nil
	}
	p, err := strconv.Unquote(s)
	if err != nil {
		return "", fmt.Errorf("cannot read quoted path %s", s)
	}
	return p, nil
}
