package workspace

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An agent that rewrites a file with content of the same size in the same second as the
// checkout leaves stat data git could mistake for "unchanged" ("racy git"). Changes must still
// see the edit, every time.
func TestChangesSeesSameSizeEditsRightAfterCheckout(t *testing.T) {
	t.Parallel()
	src, head := newRepo(t, map[string]string{"README.md": "old\n"})
	m := newManager(t)
	for i := range 3 {
		w, err := m.Create(t.Context(), Source{RepoDir: src, SHA: head}, "racy", fmt.Sprintf("job-%d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(w.Path(), "README.md"), []byte("new\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// Reading the changes back in a later second is what exposes stale stat data.
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
		c, err := w.Changes(t.Context(), ChangesOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p := patchOf(t, c); !strings.Contains(string(p), "+new") {
			t.Fatalf("attempt %d: a same-size edit right after checkout is missing from the patch %q", i, p)
		}
		if err := w.Remove(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}
