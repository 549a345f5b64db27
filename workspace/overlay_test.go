package workspace

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// countingHandler counts the log records with a given message.
type countingHandler struct {
	msg string
	n   *atomic.Int64
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// newOverlayManager returns an overlay-mode Manager on root and a counter of the shared
// checkouts it wrote.
func newOverlayManager(t *testing.T, root string) (*Manager, *atomic.Int64) {
	t.Helper()
	fills := &atomic.Int64{}
	m, err := NewManager(root, WithMode(ModeOverlay), WithLogger(slog.New(countingHandler{msg: "shared checkout created", n: fills})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, fills
}

// sharedKeys lists the shared checkouts under root.
func sharedKeys(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, sharedDir))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range entries {
		keys = append(keys, e.Name())
	}
	return keys
}

// Twenty jobs starting at once on one commit, from two Managers (as two processes) sharing
// the root, get one shared checkout written once; it goes with its last user.
func TestOverlaySharedCheckoutWrittenOnceAndRemovedWithLastUser(t *testing.T) {
	src, head := newRepo(t, baseFiles)
	root := filepath.Join(t.TempDir(), "data")
	m1, fills1 := newOverlayManager(t, root)
	m2, fills2 := newOverlayManager(t, root)
	owner, _ := agentUser()

	ws := make([]*Workspace, 20)
	var wg sync.WaitGroup
	errs := make([]error, len(ws))
	for i := range ws {
		m := m1
		if i%2 == 1 {
			m = m2
		}
		wg.Go(func() {
			ws[i], errs[i] = m.Create(t.Context(), Source{RepoDir: src, SHA: head}, "run-o", fmt.Sprint("job-", i), owner)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
	}
	if n := fills1.Load() + fills2.Load(); n != 1 {
		t.Errorf("the shared checkout was written %d times, want once", n)
	}
	l0, ok := ws[0].Layers()
	if !ok {
		t.Fatal("an overlay workspace has no layers")
	}
	for i, w := range ws {
		l, _ := w.Layers()
		if l.Lower != l0.Lower {
			t.Errorf("job %d has lower layer %s, job 0 has %s", i, l.Lower, l0.Lower)
		}
		if l.Upper == l0.Upper && i > 0 || l.Upper != w.Path() {
			t.Errorf("job %d: upper layer %s, Path %s", i, l.Upper, w.Path())
		}
	}
	// The shared checkout is a complete repository at the commit with HEAD detached, and the
	// job's upper layer puts the job's branch on top.
	if got := testGit(t, l0.Lower, "rev-parse", "HEAD"); got != head {
		t.Errorf("shared checkout HEAD = %s, want %s", got, head)
	}
	if got := testGit(t, l0.Lower, "status", "--porcelain"); got != "" {
		t.Errorf("shared checkout is dirty: %q", got)
	}
	if diff := cmp.Diff(readTree(t, src), readTree(t, l0.Lower)); diff != "" {
		t.Errorf("shared checkout differs from the source (-src +shared):\n%s", diff)
	}
	head0, err := os.ReadFile(filepath.Join(l0.Upper, ".git", "HEAD"))
	if err != nil || string(head0) != "ref: refs/heads/"+ws[0].Branch()+"\n" {
		t.Errorf("upper .git/HEAD = %q (%v)", head0, err)
	}
	ref, err := os.ReadFile(filepath.Join(l0.Upper, ".git", "refs", "heads", filepath.FromSlash(ws[0].Branch())))
	if err != nil || strings.TrimSpace(string(ref)) != head {
		t.Errorf("upper branch ref = %q (%v), want %s", ref, err, head)
	}
	if owner != nil {
		for _, p := range []string{l0.Upper, filepath.Join(l0.Upper, ".git"), filepath.Join(l0.Upper, ".git", "HEAD"), filepath.Join(l0.Lower, "README.md")} {
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != owner.UID {
				t.Errorf("%s belongs to uid %d, want %d", p, st.Uid, owner.UID)
			}
		}
	}

	for _, w := range ws[1:] {
		if err := w.Remove(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	m1.Close()
	m2.Close()
	if _, err := os.Stat(l0.Lower); err != nil {
		t.Fatalf("the shared checkout went while a job still uses it: %v", err)
	}
	if err := ws[0].Remove(t.Context()); err != nil {
		t.Fatal(err)
	}
	m1.Close()
	m2.Close()
	if keys := sharedKeys(t, root); len(keys) != 0 {
		t.Errorf("shared checkouts left after the last job: %v", keys)
	}
	// A later job on the same commit writes it again.
	w, err := m1.Create(t.Context(), Source{RepoDir: src, SHA: head}, "run-o", "again", owner)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Remove(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// After a crash, Sweep removes the dead runs' upper layers and the shared checkouts no live
// job uses, including one whose writing was interrupted.
func TestOverlaySweepAfterCrash(t *testing.T) {
	src, head := newRepo(t, baseFiles)
	src2, head2 := newRepo(t, map[string]string{"other.txt": "other\n"})
	root := filepath.Join(t.TempDir(), "data")
	crashed, _ := newOverlayManager(t, root)
	ctx := t.Context()
	wLive, err := crashed.Create(ctx, Source{RepoDir: src, SHA: head}, "live", "job", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, job := range []string{"a", "b"} {
		w, err := crashed.Create(ctx, Source{RepoDir: src, SHA: head}, "dead", job, nil)
		if err != nil {
			t.Fatal(err)
		}
		writeFiles(t, w.Path(), map[string]string{"agent.txt": "x\n"})
	}
	wOther, err := crashed.Create(ctx, Source{RepoDir: src2, SHA: head2}, "dead", "other", nil)
	if err != nil {
		t.Fatal(err)
	}
	// A shared checkout whose writer died before it was complete, with no user recorded.
	half := filepath.Join(root, sharedDir, "000000000000-"+head+"-self")
	writeFiles(t, filepath.Join(half, sharedTree), map[string]string{"README.md": "half\n"})
	if keys := sharedKeys(t, root); len(keys) < 3 {
		t.Fatalf("shared checkouts before the crash: %v", keys)
	}
	crashed.Close() // the process dies: nothing is removed

	m, _ := newOverlayManager(t, root)
	removed, err := m.Sweep(ctx, func(runID string) bool { return runID == "live" })
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if diff := cmp.Diff([]string{"dead"}, removed); diff != "" {
		t.Errorf("swept runs (-want +got):\n%s", diff)
	}
	lower, _ := wLive.Layers()
	other, _ := wOther.Layers()
	if _, err := os.Stat(lower.Lower); err != nil {
		t.Errorf("the live job's shared checkout was swept: %v", err)
	}
	if _, err := os.Stat(lower.Upper); err != nil {
		t.Errorf("the live job's upper layer was swept: %v", err)
	}
	for _, gone := range []string{other.Lower, other.Upper, half, half + ".lock", filepath.Join(root, "dead")} {
		if _, err := os.Lstat(gone); !os.IsNotExist(err) {
			t.Errorf("%s survived the sweep (%v)", gone, err)
		}
	}
	users, err := os.ReadDir(filepath.Join(filepath.Dir(lower.Lower), sharedUsers))
	if err != nil || len(users) != 1 || users[0].Name() != "live" {
		t.Errorf("users of the live shared checkout after the sweep: %v (%v)", users, err)
	}

	// The live run ends without removing its workspace (killed too): RemoveRun of a retry,
	// then nothing is left.
	if err := m.RemoveRun(ctx, "live"); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if keys := sharedKeys(t, root); len(keys) != 0 {
		t.Errorf("shared checkouts left after RemoveRun: %v", keys)
	}
}

func TestCheckRunIDRefusesReservedNames(t *testing.T) {
	for _, id := range []string{sharedDir, mirrorsDir, trashDir, "shared/x"} {
		if err := checkRunID(id); err == nil {
			t.Errorf("run id %q accepted", id)
		}
	}
}

// Changes reads only the upper layer: edits written straight into it (as the kernel would)
// give the patch a checkout with the same edits gives.
func TestOverlayChangesFromUpperLayer(t *testing.T) {
	src, head := newRepo(t, baseFiles)
	nested, _ := newRepo(t, map[string]string{"lib.go": "package lib\n"})
	edit := func(t *testing.T, dir string) {
		writeFiles(t, dir, map[string]string{"README.md": "changed\n", "new.txt": "new\n", "skip.log": "ignored\n"})
		// An embedded repository (a gitlink in the patch), one inside it, and a .git that
		// makes no repository (its directory's files count).
		testGit(t, dir, "clone", "-q", nested, "vendor/lib")
		testGit(t, dir, "clone", "-q", nested, "vendor/lib/-inner")
		writeFiles(t, dir, map[string]string{"junk/.git/HEAD": "nonsense\n", "junk/file.txt": "junk\n"})
	}
	var patches [2][]byte
	for i, mode := range []Mode{ModeCheckout, ModeOverlay} {
		m, err := NewManager(filepath.Join(t.TempDir(), "data"), WithMode(mode))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		w, err := m.Create(t.Context(), Source{RepoDir: src, SHA: head}, "run", "job", nil)
		if err != nil {
			t.Fatal(err)
		}
		if m.Mode() != mode {
			t.Errorf("Mode() = %s, want %s", m.Mode(), mode)
		}
		edit(t, w.Path())
		c, err := w.Changes(t.Context(), ChangesOptions{})
		if err != nil {
			t.Fatal(err)
		}
		patches[i] = patchOf(t, c)
		du, err := w.DiskUsage()
		if err != nil {
			t.Fatal(err)
		}
		if du <= 0 {
			t.Errorf("%s mode: DiskUsage = %d", mode, du)
		}
		// A file over the limit is refused before anything is hashed, in both modes.
		writeFiles(t, w.Path(), map[string]string{"big.txt": strings.Repeat("x", 2000)})
		_, err = w.Changes(t.Context(), ChangesOptions{Limits: ChangeLimits{File: 1000}})
		var tl *TooLargeError
		if !errors.As(err, &tl) || tl.Path != "big.txt" || tl.Size != 2000 {
			t.Errorf("%s mode: a file over the limit gave %v", mode, err)
		}
		if err := w.Remove(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"Subproject commit", "junk/file.txt", "new.txt"} {
		if !strings.Contains(string(patches[0]), want) {
			t.Errorf("checkout patch lacks %q:\n%s", want, patches[0])
		}
	}
	if len(patches[0]) == 0 || string(patches[0]) != string(patches[1]) {
		t.Errorf("patches differ:\ncheckout:\n%s\noverlay:\n%s", patches[0], patches[1])
	}
}

// A source cloneLocal does not copy (one borrowing objects through alternates) gets its shared
// checkout from git's own clone, HEAD detached there too, and the job's branch on top.
func TestOverlaySharedCheckoutByGitClone(t *testing.T) {
	src, head := newRepo(t, baseFiles)
	shared := filepath.Join(t.TempDir(), "shared")
	testGit(t, t.TempDir(), "clone", "-q", "--shared", src, shared)
	m, _ := newOverlayManager(t, filepath.Join(t.TempDir(), "data"))
	w, err := m.Create(t.Context(), Source{RepoDir: shared, SHA: head}, "run", "job", nil)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := w.Layers()
	if got := testGit(t, l.Lower, "rev-parse", "HEAD"); got != head {
		t.Errorf("shared checkout HEAD = %s, want %s", got, head)
	}
	if _, err := os.Stat(filepath.Join(l.Lower, ".git", "refs", "heads", "agentrunner")); err == nil {
		t.Errorf("the shared checkout has a job branch of its own")
	}
	writeFiles(t, w.Path(), map[string]string{"docs/guide.txt": "rewritten\n"})
	c, err := w.Changes(t.Context(), ChangesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]FileChange{{Path: "docs/guide.txt", Status: Modified}}, c.Files); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	if err := w.Remove(t.Context()); err != nil {
		t.Fatal(err)
	}
}
