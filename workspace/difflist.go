package workspace

import (
	"bytes"
	"fmt"
	"io"
)

// listThenPatch takes the output of `git diff -z --raw --numstat --binary`: the file lists
// (raw records, then numstat records, then an empty record) and after them the patch, byte
// for byte what `git diff --binary` alone prints (-z changes only the lists). It keeps the
// lists and passes the patch on, so that one git process gives both, where two cost a few
// milliseconds more per job of a fan-out.
type listThenPatch struct {
	patch   io.Writer
	lists   []byte
	off     int  // lists[:off] are whole records
	numstat bool // the raw records are over
	inPatch bool
}

func (l *listThenPatch) Write(p []byte) (int, error) {
	if l.inPatch {
		return l.patch.Write(p)
	}
	l.lists = append(l.lists, p...)
	sep, err := l.scan()
	if err != nil || sep < 0 {
		return len(p), err
	}
	l.inPatch = true
	rest := l.lists[sep+1:]
	l.lists = l.lists[:sep]
	if len(rest) > 0 {
		if _, err := l.patch.Write(rest); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// scan reads the whole records received so far and returns where the empty record between
// the lists and the patch is, or -1 when it has not come yet.
func (l *listThenPatch) scan() (int, error) {
	b := l.lists
	for l.off < len(b) {
		i := l.off
		if !l.numstat && b[i] != ':' {
			l.numstat = true
		}
		if l.numstat && b[i] == 0 {
			return i, nil
		}
		// A raw record: a header (its last word the status), then one path, or two for a
		// rename or copy. A numstat record: "added\tdeleted\tpath", or for a rename or copy
		// "added\tdeleted\t" then the two paths.
		rec, ok := field(b, i)
		if !ok {
			return -1, nil
		}
		paths := 0
		if l.numstat {
			parts := bytes.SplitN(b[i:i+len(rec)], []byte{'\t'}, 3)
			if len(parts) != 3 {
				return -1, fmt.Errorf("unexpected numstat record %q", rec)
			}
			if len(parts[2]) == 0 {
				paths = 2
			}
		} else {
			code := rec[bytes.LastIndexByte(rec, ' ')+1:]
			if len(code) == 0 {
				return -1, fmt.Errorf("unexpected raw diff record %q", rec)
			}
			paths = 1
			if code[0] == 'R' || code[0] == 'C' {
				paths = 2
			}
		}
		end := i + len(rec) + 1
		for range paths {
			p, ok := field(b, end)
			if !ok {
				return -1, nil
			}
			end += len(p) + 1
		}
		l.off = end
	}
	return -1, nil
}

// field returns the NUL-terminated field at b[i:], false when its end has not come yet.
func field(b []byte, i int) ([]byte, bool) {
	if i >= len(b) {
		return nil, false
	}
	j := bytes.IndexByte(b[i:], 0)
	if j < 0 {
		return nil, false
	}
	return b[i : i+j], true
}
