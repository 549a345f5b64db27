package workspace

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/internal/gittest"
)

func TestChangesLimits(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 32<<10) // 2 MiB
	src, head := newRepo(t, map[string]string{"a.txt": "a\n", "tracked-big.txt": big, ".gitignore": "build/\n"})
	m := newManager(t)
	limits := ChangeLimits{File: 1 << 20, Patch: 1 << 20}
	tests := []struct {
		name    string
		files   map[string]string
		tooBig  string // the file named by the error; "-" for the patch
		changed bool
	}{
		{name: "new file over the file limit", files: map[string]string{"big.bin": big}, tooBig: "big.bin"},
		{name: "modified file over the file limit", files: map[string]string{"tracked-big.txt": big + "x\n"}, tooBig: "tracked-big.txt"},
		{name: "patch over the patch limit", files: map[string]string{"p1.txt": big[:900<<10], "p2.txt": big[:900<<10]}, tooBig: "-"},
		{name: "ignored and unchanged large files are no changes", files: map[string]string{"build/out.bin": big, "a.txt": "A\n"}, changed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := m.Create(t.Context(), Source{RepoDir: src, SHA: head}, "limits", tc.name, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Remove(t.Context())
			writeFiles(t, w.Path(), tc.files)
			objects := filepath.Join(w.private, "objects")
			before := gittest.DirSize(t, objects)
			patch := filepath.Join(t.TempDir(), "changes.patch")
			c, err := w.Changes(t.Context(), ChangesOptions{PatchFile: patch, Limits: limits})
			if tc.tooBig == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Empty() == tc.changed || len(c.Files) != 1 || c.Files[0].Path != "a.txt" {
					t.Errorf("changes = %+v, want a.txt only", c)
				}
				return
			}
			var tl *TooLargeError
			if !errors.As(err, &tl) {
				t.Fatalf("err = %v, want a TooLargeError", err)
			}
			if !strings.Contains(err.Error(), "changes too large") {
				t.Errorf("err = %q, want it to say the changes are too large", err)
			}
			if tc.tooBig == "-" {
				if tl.Path != "" || tl.Limit != limits.Patch || tl.Size <= limits.Patch {
					t.Errorf("err = %+v, want the patch over %d", tl, limits.Patch)
				}
			} else {
				if tl.Path != tc.tooBig || tl.Size <= limits.File {
					t.Errorf("err = %+v, want %s over %d", tl, tc.tooBig, limits.File)
				}
				// Refused before hashing: nothing of the file went into any object store.
				if grew := gittest.DirSize(t, objects) - before; grew > 64<<10 {
					t.Errorf("the private object store grew by %d bytes", grew)
				}
			}
			if _, err := os.Stat(patch); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("patch file left behind (stat: %v)", err)
			}
		})
	}
}
