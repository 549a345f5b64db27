package workspace

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The file list of one `git diff --raw --numstat` is what --name-status and --numstat give
// apart, also for paths that look like raw headers or numstat lines.
func TestSplitRawNumstatMatchesSeparateLists(t *testing.T) {
	src, head := newRepo(t, map[string]string{
		":colon.txt":   "one\ntwo\nthree\nfour\nfive\n",
		"1\t2\tx":      "tabbed\n",
		"logo.bin":     binaryContent,
		"gone.txt":     "gone\n",
		"dir/keep.txt": "keep\n",
	})
	testGit(t, src, "mv", ":colon.txt", ":renamed.txt")
	testGit(t, src, "rm", "-q", "gone.txt")
	writeFiles(t, src, map[string]string{"logo.bin": binaryContent + "more", "1\t2\tx": "changed\n", ":new": "new\n"})
	testGit(t, src, "add", "-A")
	testGit(t, src, "commit", "-q", "-m", "edits")
	g := newGitRunner(t.TempDir())
	args := []string{"diff", "--no-color", "--no-ext-diff", "--no-textconv", "-M", "--full-index", "-z"}
	run := func(extra ...string) []byte {
		out, err := g.run(t.Context(), src, nil, append(append(append([]string(nil), args...), extra...), head, "HEAD", "--")...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	status, numstat, err := splitRawNumstat(run("--raw", "--numstat"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := parseNameStatus(run("--name-status"), binaryPaths(run("--numstat")))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseNameStatus(status, binaryPaths(numstat))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 5 {
		t.Fatalf("the separate lists hold %d files, want 5: %+v", len(want), want)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-separate +combined):\n%s", diff)
	}
}
