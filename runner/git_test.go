package runner

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPatchPaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		patch string
		want  []string
		ok    bool
	}{
		{"a modified and a new file", "diff --git a/x.txt b/x.txt\nindex 1..2 100644\n--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-a\n+b\ndiff --git a/d/y z b/d/y z\nnew file mode 100644\n", []string{"x.txt", "d/y z"}, true},
		{"a rename names both paths", "diff --git a/old b/new\nsimilarity index 90%\nrename from old\nrename to new\n", []string{"old", "new"}, true},
		{"a binary file", "diff --git a/b.bin b/b.bin\nnew file mode 100644\nindex 0..1\nGIT binary patch\nliteral 3\n", []string{"b.bin"}, true},
		{"quoted paths are not guessed", "diff --git \"a/\\303\\251\" \"b/\\303\\251\"\n", nil, false},
		{"an empty patch", "", nil, true},
		{"a line too long to scan is not guessed past", "diff --git a/x b/x\n+" + strings.Repeat("x", 2<<20) + "\ndiff --git a/y b/y\n", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := patchFilePaths(patchFile(t, []byte(tc.patch)))
			if ok != tc.ok || ok && !slices.Equal(got, tc.want) {
				t.Errorf("patchFilePaths = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// patchFile writes patch to a file of its own and returns its name.
func patchFile(t *testing.T, patch []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "p.patch")
	if err := os.WriteFile(f, patch, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPartitionPatches(t *testing.T) {
	t.Parallel()
	p := func(paths ...string) NamedPatch {
		var s string
		for _, x := range paths {
			s += "diff --git a/" + x + " b/" + x + "\n"
		}
		return NamedPatch{File: patchFile(t, []byte(s))}
	}
	quoted := NamedPatch{File: patchFile(t, []byte("diff --git \"a/q\" \"b/q\"\n"))}
	patches := []NamedPatch{p("a"), p("b", "c"), p("c"), p("d"), quoted, p("a2")}
	alone, shared := partitionPatches(patches)
	if !slices.Equal(alone, []int{0, 3, 5}) || !slices.Equal(shared, []int{1, 2, 4}) {
		t.Errorf("alone %v, shared %v; want [0 3 5] and [1 2 4]", alone, shared)
	}
}

func TestGitMergerFallsBackWhenTheCombinedPatchFails(t *testing.T) {
	t.Parallel()
	repo, sha := gitRepo(t)
	bad := []byte("diff --git a/keep.txt b/keep.txt\n--- a/keep.txt\n+++ b/keep.txt\n@@ -1 +1 @@\n-not what is there\n+x\n")
	m, err := (&GitMerger{RepoDir: repo, BaseSHA: sha}).Merge(t.Context(), []NamedPatch{
		{Name: "one", File: patchFile(t, newFilePatch("one.txt", "1\n"))},
		{Name: "bad", File: patchFile(t, bad)},
		{Name: "two", File: patchFile(t, newFilePatch("two.txt", "2\n"))},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Applied, []string{"one", "two"}) || len(m.Conflicts) != 1 || m.Conflicts[0].Job != "bad" {
		t.Errorf("applied %v, conflicts %+v; want one, two applied and bad named", m.Applied, m.Conflicts)
	}
	if len(m.Files) != 2 {
		t.Errorf("files = %+v, want one.txt and two.txt", m.Files)
	}
}
