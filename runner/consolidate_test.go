package runner

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

func TestConsolidationUnionConflictsAndReplicas(t *testing.T) {
	t.Parallel()
	h, repo, sha := gitHarness(t)
	// verify's replicas each write their verdict to the same file: stacking them would
	// conflict, so only the winner's patch may be taken.
	h.sb.argv = func(in *plan.Instance) []string {
		if in.Agent != "verify" {
			return in.Argv
		}
		v := []string{"yes", "no", "yes"}[in.Replica-1]
		return []string{"/testagent", "write", "verdict.txt=" + v + " from replica\n", "output", "verdict=" + v}
	}
	p := routine(t, `
agents:
  edit:
    changes: keep
    command: ["/testagent", "append", "keep.txt=line 4\n", "delete", "gone.txt", "binary", "blob.bin", "write", "new/dir/a.txt=new\n", "commit", "edit inside the workspace", "write", "after-commit.txt=uncommitted\n"]
  audit:
    matrix: {i: [1, 2, 3]}
    changes: keep
    command: ["/testagent", "write", "audit/${{ matrix.i }}.md=checked ${{ matrix.i }}\n"]
  clash:
    needs: [audit]
    matrix: {side: [left, right]}
    changes: keep
    command: ["/testagent", "write", "shared.txt=${{ matrix.side }}\n"]
  verify:
    needs: [edit]
    replicas: 3
    quorum: 2
    vote: verdict
    changes: keep
    command: ["/testagent"]
  discarded:
    command: ["/testagent", "write", "discarded.txt=x\n"]
`, sha)
	res := h.run(t, t.Context(), p, nil)

	wantApplied := []string{"edit", "audit[1]", "audit[2]", "audit[3]", "clash[left]", "verify#1"}
	if !slices.Equal(res.Applied, wantApplied) {
		t.Errorf("applied = %v, want %v", res.Applied, wantApplied)
	}
	if len(res.Conflicts) != 1 || res.Conflicts[0].Job != "clash[right]" || !slices.Equal(res.Conflicts[0].Files, []string{"shared.txt"}) {
		t.Errorf("conflicts = %+v, want clash[right] on shared.txt", res.Conflicts)
	}
	if !strings.Contains(res.Report, "### Conflicts") || !strings.Contains(res.Report, "**clash[right]**: shared.txt") {
		t.Errorf("the report does not name the conflicting agent:\n%s", res.Report)
	}
	if res.Conclusion != result.ConclusionFailure {
		t.Errorf("conclusion = %s, want failure: a conflict left work out", res.Conclusion)
	}
	got := map[string]string{}
	for _, f := range res.Files {
		got[f.Path] = f.Status
		if f.Path == "blob.bin" && !f.Binary {
			t.Error("blob.bin is not marked binary")
		}
	}
	want := map[string]string{
		"keep.txt": "modified", "gone.txt": "deleted", "blob.bin": "added", "new/dir/a.txt": "added",
		"after-commit.txt": "added", "audit/1.md": "added", "audit/2.md": "added", "audit/3.md": "added",
		"shared.txt": "modified", "verdict.txt": "added",
	}
	if len(got) != len(want) {
		t.Errorf("files = %v, want %v", got, want)
	}
	for p, st := range want {
		if got[p] != st {
			t.Errorf("file %s = %q, want %q", p, got[p], st)
		}
	}
	// The consolidated patch applies to the base and gives the winner's verdict only.
	check := exec.Command("git", "apply", "--check", "-")
	check.Dir = repo
	check.Stdin = strings.NewReader(string(res.Patch))
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("the consolidated patch does not apply to the base: %v\n%s", err, out)
	}
	if !strings.Contains(string(res.Patch), "+yes from replica") || strings.Contains(string(res.Patch), "no from replica") {
		t.Errorf("the patch does not hold exactly the winning replica's change:\n%s", res.Patch)
	}
	if strings.Contains(string(res.Patch), "discarded.txt") {
		t.Error("changes of an agent without changes: keep were kept")
	}
	if j := jobOf(t, res, "edit"); j.Changes == nil || len(j.Changes.Files) != 5 {
		t.Errorf("edit's own changes = %+v, want 5 files", j.Changes)
	}
	h.eng.Workspaces.(*GitWorkspaces).Manager.Close()
	if left := leftInRoot(t, h.wsRoot); len(left) > 0 {
		t.Errorf("workspaces left behind: %v", left)
	}
}

// A later stage starts from the kept changes of the agents it needs: the reviewer sees the
// fixer's work, and the stages' patches stack into one consolidated change.
func TestLaterStagesWorkOnEarlierStagesChanges(t *testing.T) {
	t.Parallel()
	h, repo, sha := gitHarness(t)
	p := routine(t, `
agents:
  fix:
    matrix: {part: [a, b]}
    changes: keep
    command: ["/testagent", "write", "notes/${{ matrix.part }}.txt=fixed ${{ matrix.part }}\n"]
  review:
    needs: [fix]
    changes: keep
    command: ["/testagent", "append", "notes/a.txt=reviewed\n", "append", "notes/b.txt=reviewed\n"]
  unrelated:
    command: ["/testagent", "append", "notes/a.txt=never\n"]
    changes: keep
`, sha)
	res := h.run(t, t.Context(), p, nil)
	if res.Conclusion != result.ConclusionFailure || len(res.Conflicts) != 1 || res.Conflicts[0].Job != "unrelated" {
		// unrelated ran on the untouched commit, where notes/a.txt does not exist yet: its
		// append creates the file, which conflicts with fix[a]'s.
		t.Errorf("conclusion %s, conflicts %+v: want only the unrelated agent left out", res.Conclusion, res.Conflicts)
	}
	review := jobOf(t, res, "review")
	if review.Outcome != result.Success || review.Changes == nil || !strings.Contains(patchOf(review), " fixed a\n+reviewed") {
		t.Fatalf("review should have appended to fix's file (a patch on top of the fix), got %s:\n%s", review.Outcome, patchOf(review))
	}
	tree := applyCombined(t, repo, sha, res.Patch)
	for path, want := range map[string]string{"notes/a.txt": "fixed a\nreviewed\n", "notes/b.txt": "fixed b\nreviewed\n"} {
		if tree[path] != want {
			t.Errorf("%s after the consolidated patch = %q, want %q", path, tree[path], want)
		}
	}
}

func patchOf(j *result.Job) string {
	if j.Changes == nil || j.Changes.PatchFile == "" {
		return ""
	}
	b, err := os.ReadFile(j.Changes.PatchFile)
	if err != nil {
		return "unreadable patch: " + err.Error()
	}
	return string(b)
}

// applyCombined applies patch to a fresh checkout of sha and returns the files it touches.
func applyCombined(t *testing.T, repo, sha string, patch []byte) map[string]string {
	t.Helper()
	dir := t.TempDir()
	for _, args := range [][]string{{"clone", "-q", repo, dir}, {"-C", dir, "checkout", "-q", sha}} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	cmd := exec.Command("git", "-C", dir, "apply", "-")
	cmd.Stdin = strings.NewReader(string(patch))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the consolidated patch does not apply: %v\n%s\n%s", err, out, patch)
	}
	files := map[string]string{}
	for _, p := range []string{"notes/a.txt", "notes/b.txt"} {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err == nil {
			files[p] = string(b)
		}
	}
	return files
}
