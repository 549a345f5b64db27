package web

import (
	"context"
	"errors"
	"strconv"

	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/web/render"
)

// openDiffLines is how many hunk lines a patch may have for its files to show opened; a
// larger patch shows its files folded, to be opened one by one.
const openDiffLines = 3000

// diffView is a patch as the "diff" template shows it.
type diffView struct {
	Files []render.FileDiff
	// Open says the files show unfolded.
	Open bool
	// Note says what could not be shown (the patch was cut, or did not parse whole).
	Note string
	// Conflicted maps a path to the jobs whose patch of it could not be merged.
	Conflicted map[string]string
	// Present says there is a patch at all (Files may still be empty: a patch without files).
	Present bool
	Added   int
	Removed int
}

// loadDiff reads a patch run file (see runFile) and parses it for the "diff" template.
func (u *UI) loadDiff(ctx context.Context, runID, name, local string) diffView {
	b, err := u.runFile(ctx, runID, name, local)
	return diffFrom(b, err)
}

func diffFrom(b []byte, err error) diffView {
	var d diffView
	switch {
	case errors.Is(err, store.ErrNotFound):
		return d
	case errors.Is(err, errRunFileTooLarge):
		return diffView{Present: true, Note: "The patch is too large to show here."}
	case err != nil:
		return diffView{Present: true, Note: "The patch could not be read now."}
	case len(b) == 0:
		return d
	}
	d.Present = true
	d.Files, err = render.ParsePatch(b)
	switch {
	case errors.Is(err, render.ErrPatchTruncated):
		d.Note = "The patch is too large to show whole: its beginning is shown (" + strconv.Itoa(render.MaxPatchLines) + " lines at most)."
	case err != nil:
		d.Note = "Part of the patch could not be read: " + err.Error()
	}
	lines := 0
	for _, f := range d.Files {
		d.Added += f.Added
		d.Removed += f.Removed
		for _, h := range f.Hunks {
			lines += len(h.Lines)
		}
	}
	d.Open = lines <= openDiffLines
	return d
}

func itoa(n int) string { return strconv.Itoa(n) }
