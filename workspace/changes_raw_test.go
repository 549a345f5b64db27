package workspace

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// One `git diff -z --raw --numstat --binary` gives diffTrees the patch `git diff --binary`
// alone prints and the files --name-status and --numstat list apart, also for paths that
// look like raw headers or numstat lines, whatever the chunks the output arrives in.
func TestDiffTreesOneProcessMatchesSeparateCommands(t *testing.T) {
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
	want, err := parseNameStatus(run("--name-status"), binaryPaths(run("--numstat")))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 5 {
		t.Fatalf("the separate lists hold %d files, want 5: %+v", len(want), want)
	}
	wantPatch := run("--binary")
	var patch bytes.Buffer
	got, size, err := diffTrees(t.Context(), g, src, head, testGit(t, src, "rev-parse", "HEAD^{tree}"), &patch, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-separate +combined):\n%s", diff)
	}
	if !bytes.Equal(patch.Bytes(), wantPatch) || size != int64(len(wantPatch)) {
		t.Errorf("patch (%d bytes) differs from git diff --binary's:\n%s\nwant:\n%s", size, patch.Bytes(), wantPatch)
	}
	// The same output arriving a byte at a time.
	full := run("--raw", "--numstat", "--binary")
	var slow bytes.Buffer
	lp := &listThenPatch{patch: &slow}
	for i := range full {
		if _, err := lp.Write(full[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(slow.Bytes(), wantPatch) {
		t.Errorf("byte-at-a-time patch differs")
	}
}
