package workspace

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// agentPatch returns the patch file of a workspace on head of src after change ran in it.
func agentPatch(t *testing.T, m *Manager, src, head, name string, files map[string]string, remove ...string) string {
	t.Helper()
	w, err := m.Create(t.Context(), Source{RepoDir: src, SHA: head}, "merge", name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Remove(t.Context())
	writeFiles(t, w.Path(), files)
	for _, r := range remove {
		if err := os.Remove(filepath.Join(w.Path(), r)); err != nil {
			t.Fatal(err)
		}
	}
	c, err := w.Changes(t.Context(), ChangesOptions{PatchFile: filepath.Join(t.TempDir(), name+".patch")})
	if err != nil {
		t.Fatal(err)
	}
	return c.PatchFile
}

func TestMerge(t *testing.T) {
	t.Parallel()
	lines := "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n19\n20\n"
	src, head := newRepo(t, map[string]string{"a.txt": lines, "b.txt": "b\n", "gone.txt": "bye\n"})
	m := newManager(t)
	edit := func(old, new string) string { return strings.Replace(lines, old, new, 1) }
	var (
		top      = agentPatch(t, m, src, head, "top", map[string]string{"a.txt": edit("2\n", "two\n")})
		bottom   = agentPatch(t, m, src, head, "bottom", map[string]string{"a.txt": edit("19\n", "nineteen\n")})
		same     = agentPatch(t, m, src, head, "same-line", map[string]string{"a.txt": edit("2\n", "TWO\n")})
		newFile  = agentPatch(t, m, src, head, "new-file", map[string]string{"c/new.txt": "c\n"}, "gone.txt")
		newFile2 = agentPatch(t, m, src, head, "new-file-again", map[string]string{"c/new.txt": "c\n"}, "gone.txt")
		other    = agentPatch(t, m, src, head, "other-new", map[string]string{"c/new.txt": "different\n"})
		binary   = agentPatch(t, m, src, head, "binary", map[string]string{"img.bin": binaryContent})
		rename   = agentPatch(t, m, src, head, "rename", map[string]string{"moved/b.txt": "b\n"}, "b.txt")
		garbage  = filepath.Join(t.TempDir(), "garbage.patch")
	)
	if err := os.WriteFile(garbage, []byte("diff --git a/x b/x\nthis is not a patch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		patches   []NamedPatch
		want      map[string]string // files changed against the base, "" = deleted
		applied   []string
		conflicts []Conflict
	}{
		{
			name:    "non-overlapping patches combine to their union",
			patches: []NamedPatch{{"top", top}, {"bottom", bottom}, {"new-file", newFile}, {"binary", binary}, {"rename", rename}},
			want:    map[string]string{"a.txt": strings.Replace(edit("2\n", "two\n"), "19\n", "nineteen\n", 1), "c/new.txt": "c\n", "gone.txt": "", "img.bin": binaryContent, "b.txt": "", "moved/b.txt": "b\n"},
			applied: []string{"top", "bottom", "new-file", "binary", "rename"},
		},
		{
			name:      "a patch editing the same line as an earlier one is left out and named",
			patches:   []NamedPatch{{"top", top}, {"same-line", same}, {"bottom", bottom}},
			want:      map[string]string{"a.txt": strings.Replace(edit("2\n", "two\n"), "19\n", "nineteen\n", 1)},
			applied:   []string{"top", "bottom"},
			conflicts: []Conflict{{Name: "same-line", Files: []string{"a.txt"}}},
		},
		{
			name:    "identical patches from two agents apply once",
			patches: []NamedPatch{{"new-file", newFile}, {"new-file-again", newFile2}, {"top", top}, {"top-again", top}},
			want:    map[string]string{"c/new.txt": "c\n", "gone.txt": "", "a.txt": edit("2\n", "two\n")},
			applied: []string{"new-file", "new-file-again", "top", "top-again"},
		},
		{
			name:      "two agents adding the same file differently conflict",
			patches:   []NamedPatch{{"new-file", newFile}, {"other-new", other}},
			want:      map[string]string{"c/new.txt": "c\n", "gone.txt": ""},
			applied:   []string{"new-file"},
			conflicts: []Conflict{{Name: "other-new", Files: []string{"c/new.txt"}}},
		},
		{
			name:      "a corrupt patch is reported, not fatal",
			patches:   []NamedPatch{{"garbage", garbage}, {"binary", binary}},
			want:      map[string]string{"img.bin": binaryContent},
			applied:   []string{"binary"},
			conflicts: []Conflict{{Name: "garbage"}},
		},
		{
			name:    "nothing to merge gives no commit",
			patches: []NamedPatch{{"empty", ""}},
			applied: []string{"empty"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Merge(t.Context(), src, head, tc.patches)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.applied, res.Applied); diff != "" {
				t.Errorf("applied (-want +got):\n%s", diff)
			}
			for i := range res.Conflicts {
				if res.Conflicts[i].Reason == "" {
					t.Errorf("conflict %s has no reason", res.Conflicts[i].Name)
				}
				t.Logf("conflict %s: %s", res.Conflicts[i].Name, res.Conflicts[i].Reason)
				res.Conflicts[i].Reason = ""
			}
			if diff := cmp.Diff(tc.conflicts, res.Conflicts); diff != "" {
				t.Errorf("conflicts (-want +got):\n%s", diff)
			}
			if tc.want == nil {
				if res.Commit != "" || len(res.Patch) != 0 {
					t.Errorf("commit %q, patch %d bytes; want none", res.Commit, len(res.Patch))
				}
				return
			}
			if parent := testGit(t, src, "rev-parse", res.Commit+"^"); parent != head {
				t.Errorf("merge commit's parent = %s, want base %s", parent, head)
			}
			// The combined patch and the commit both give exactly base + the wanted changes.
			want := readTree(t, applyPatch(t, src, head, nil))
			for p, c := range tc.want {
				if c == "" {
					delete(want, p)
				} else {
					want[p] = c
				}
			}
			if diff := cmp.Diff(want, readTree(t, applyPatch(t, src, head, res.Patch))); diff != "" {
				t.Errorf("base + combined patch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, readTree(t, applyPatch(t, src, res.Commit, nil))); diff != "" {
				t.Errorf("merge commit (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCommitPatch(t *testing.T) {
	t.Parallel()
	src, head := newRepo(t, map[string]string{"a.txt": "a\n"})
	m := newManager(t)
	patch := mustRead(t, agentPatch(t, m, src, head, "p", map[string]string{"a.txt": "A\n", "bin": binaryContent}))
	sha, err := CommitPatch(t.Context(), src, head, patch, "Apply agent changes")
	if err != nil {
		t.Fatal(err)
	}
	if got := testGit(t, src, "log", "-1", "--format=%an <%ae>|%s|%P", sha); got != "agentrunner <agentrunner@users.noreply.github.com>|Apply agent changes|"+head {
		t.Errorf("commit = %q", got)
	}
	if diff := cmp.Diff(map[string]string{"a.txt": "A\n", "bin": binaryContent}, readTree(t, applyPatch(t, src, sha, nil))); diff != "" {
		t.Errorf("committed tree (-want +got):\n%s", diff)
	}
	if _, err := CommitPatch(t.Context(), src, head, nil, "x"); !errors.Is(err, ErrEmptyPatch) {
		t.Errorf("empty patch: err = %v, want ErrEmptyPatch", err)
	}
	if _, err := CommitPatch(t.Context(), src, sha, patch, "again"); err == nil {
		t.Errorf("a patch that does not apply was committed")
	}
}
