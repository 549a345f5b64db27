package runner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/workspace"
)

// dockerRig is the engine as `runner exec` wires it: real Docker sandbox, git workspaces
// owned by the container's user, the git merger, on a fresh repository.
type dockerRig struct {
	eng   *Engine
	sb    *sandbox.Docker
	wsm   *workspace.Manager
	repo  string
	sha   string
	runID string
	rec   *recorder
}

func newDockerRig(t testing.TB) *dockerRig {
	t.Helper()
	cli := dockertest.Client(t)
	dockertest.TestAgentImage(t)
	r := &dockerRig{runID: dockertest.RunID(t), rec: &recorder{}}
	r.repo, r.sha = gitRepo(t)
	var err error
	mode := workspace.WithMode(workspace.Mode(dockertest.WorkspaceMode(t)))
	if r.wsm, err = workspace.NewManager(filepath.Join(t.TempDir(), "ws"), mode); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.wsm.Close()
		if left := leftInRoot(t, r.wsm.Root()); len(left) > 0 {
			t.Errorf("workspaces left behind: %v", left)
		}
	})
	r.sb = sandbox.NewDocker(cli, sandbox.Options{StopGrace: time.Second, Logger: slog.New(slog.DiscardHandler)})
	r.eng = &Engine{
		Sandbox: &Containers{Sandbox: r.sb},
		Workspaces: &GitWorkspaces{
			Manager: r.wsm,
			Source:  workspace.Source{RepoDir: r.repo, SHA: r.sha},
			Owner:   &workspace.Owner{UID: 10001, GID: 10001},
		},
		Merger:    &GitMerger{RepoDir: r.repo, BaseSHA: r.sha},
		Reporter:  r.rec,
		MaxAgents: 8,
	}
	return r
}

func (r *dockerRig) run(t testing.TB, ctx context.Context, body string) *result.Run {
	t.Helper()
	p := routine(t, "defaults: {image: agentrunner/testagent:dev, timeout: 2m, resources: {memory: 64m, pids: 64}}\n"+body, r.sha)
	res, err := r.eng.Run(ctx, &reporters.RunInfo{ID: r.runID, Repo: "o/r", Plan: p}, RunOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return res
}

// overrideArgv gives some instances another command (replicas that vote differently).
type overrideArgv struct {
	Sandbox
	argv func(in *plan.Instance) []string
}

func (o overrideArgv) Run(ctx context.Context, t *Task, logs io.Writer) (*Exit, error) {
	in := *t.Instance
	in.Argv = o.argv(&in)
	cp := *t
	cp.Instance = &in
	return o.Sandbox.Run(ctx, &cp, logs)
}

// applyTo checks out a fresh copy of the base, applies patch and returns the tree's files.
func applyTo(t testing.TB, repo, sha string, patch []byte) map[string]string {
	t.Helper()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"clone", "-q", "--no-checkout", repo, dir},
		{"-C", dir, "checkout", "-q", sha},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	cmd := exec.Command("git", "-C", dir, "apply", "--whitespace=nowarn", "-")
	cmd.Stdin = bytes.NewReader(patch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apply the patch to the base: %v\n%s", err, out)
	}
	return gittest.ReadTree(t, dir)
}

func TestDockerAgentEditsOutputsReportFindings(t *testing.T) {
	t.Parallel()
	r := newDockerRig(t)
	res := r.run(t, t.Context(), `
agents:
  edit:
    changes: keep
    command: ["/testagent", "append", "keep.txt=line 4\n", "delete", "gone.txt", "binary", "blob.bin", "write", "new/dir/a.txt=new\n",
      "commit", "edit inside the container",
      "write", "after-commit.txt=uncommitted\n",
      "output", "answer=42", "output-json", 'list=[1,"two"]', "report", "# Edited", "finding", "keep.txt:4:warning:added a line"]
`)
	j := jobOf(t, res, "edit")
	if j.Outcome != result.Success || res.Conclusion != result.ConclusionSuccess {
		t.Fatalf("edit = %s (%s), run = %s\nlog: %s", j.Outcome, j.Error, res.Conclusion, j.LogTail)
	}
	if j.DiskUsage <= 0 {
		t.Errorf("disk usage %d: the workspace the agent wrote takes some", j.DiskUsage)
	}
	if j.Outputs["answer"] != "42" || fmt.Sprint(j.Outputs["list"]) != "[1 two]" {
		t.Errorf("outputs = %v", j.Outputs)
	}
	if j.Report != "# Edited\n" || !strings.Contains(res.Report, "# Edited") {
		t.Errorf("report = %q; run report:\n%s", j.Report, res.Report)
	}
	if len(j.Findings) != 1 || j.Findings[0] != (result.Finding{Path: "keep.txt", Line: 4, Level: "warning", Message: "added a line"}) {
		t.Errorf("findings = %+v", j.Findings)
	}
	files := applyTo(t, r.repo, r.sha, res.Patch)
	blob := make([]byte, 256)
	for i := range blob {
		blob[i] = byte(i)
	}
	want := map[string][]byte{
		"README.md":        []byte("# demo\n"),
		"keep.txt":         []byte("line 1\nline 2\nline 3\nline 4\n"),
		"shared.txt":       []byte("base\n"),
		"blob.bin":         blob,
		"new/dir/a.txt":    []byte("new\n"),
		"after-commit.txt": []byte("uncommitted\n"),
	}
	if len(files) != len(want) {
		t.Errorf("files after the patch: %v, want %v", keys(files), keys(want))
	}
	for p, b := range want {
		if !bytes.Equal([]byte(files[p]), b) {
			t.Errorf("%s = %q, want %q", p, files[p], b)
		}
	}
	if !slices.Equal(res.Applied, []string{"edit"}) {
		t.Errorf("applied = %v", res.Applied)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestDockerHundredWayFanOut: a planner's 100 tasks fan out 8 at a time; every fourth-and-
// twentieth task also rewrites shared.txt, so all but the first of those conflict.
func TestDockerHundredWayFanOut(t *testing.T) {
	t.Parallel()
	r := newDockerRig(t)
	var tasks []string
	for i := range 100 {
		tasks = append(tasks, fmt.Sprintf(`"t%03d"`, i))
	}
	start := time.Now()
	res := r.run(t, t.Context(), `
agents:
  plan:
    command: ["/testagent", "output-json", 'tasks=[`+strings.Join(tasks, ",")+`]']
  audit:
    needs: [plan]
    matrix: {task: "${{ fromJSON(needs.plan.outputs.tasks) }}"}
    max-parallel: 8
    changes: keep
    command: ["/testagent", "write", "audit/${{ matrix.task }}.md=checked ${{ matrix.task }}\n",
      "write", "${{ (endsWith(matrix.task, '00') || endsWith(matrix.task, '25') || endsWith(matrix.task, '50') || endsWith(matrix.task, '75')) && 'shared.txt' || format('audit/.keep-{0}', matrix.task) }}=${{ matrix.task }}\n",
      "output", "task=${{ matrix.task }}"]
`)
	t.Logf("100-way fan-out took %v", time.Since(start))
	a := agentOf(t, res, "audit")
	if len(a.Jobs) != 100 || a.Counts["success"] != 100 {
		t.Fatalf("audit: %d jobs, counts %v", len(a.Jobs), a.Counts)
	}
	conflicting := []string{"audit[t025]", "audit[t050]", "audit[t075]"}
	var gotConflicts []string
	for _, c := range res.Conflicts {
		gotConflicts = append(gotConflicts, c.Job)
		if !slices.Equal(c.Files, []string{"shared.txt"}) {
			t.Errorf("conflict %s on %v, want shared.txt", c.Job, c.Files)
		}
		if !strings.Contains(res.Report, "**"+c.Job+"**") {
			t.Errorf("the report does not name %s", c.Job)
		}
	}
	if !slices.Equal(gotConflicts, conflicting) {
		t.Errorf("conflicts = %v, want %v", gotConflicts, conflicting)
	}
	if len(res.Applied) != 97 {
		t.Errorf("applied %d patches, want 97", len(res.Applied))
	}
	// Exactly the union of the non-conflicting agents' changes.
	files := applyTo(t, r.repo, r.sha, res.Patch)
	want := map[string]string{"README.md": "# demo\n", "keep.txt": "line 1\nline 2\nline 3\n", "gone.txt": "to be deleted\n", "shared.txt": "t000\n"}
	for i := range 100 {
		task := fmt.Sprintf("t%03d", i)
		if slices.Contains(conflicting, "audit["+task+"]") {
			continue
		}
		want["audit/"+task+".md"] = "checked " + task + "\n"
		if i%25 != 0 {
			want["audit/.keep-"+task] = task + "\n"
		}
	}
	if len(files) != len(want) {
		t.Errorf("%d files after the patch, want %d", len(files), len(want))
	}
	for p, content := range want {
		if files[p] != content {
			t.Errorf("%s = %q, want %q", p, files[p], content)
		}
	}
	if res.Conclusion != result.ConclusionFailure {
		t.Errorf("conclusion = %s, want failure (work was left out)", res.Conclusion)
	}
}

func TestDockerQuorumAndJudge(t *testing.T) {
	t.Parallel()
	r := newDockerRig(t)
	votes := map[string][]string{"agree": {"yes", "no", "yes"}, "split": {"yes", "no", "maybe"}, "judged": {"a", "b", "c"}}
	r.eng.Sandbox = overrideArgv{Sandbox: r.eng.Sandbox, argv: func(in *plan.Instance) []string {
		v, ok := votes[in.Agent]
		if !ok || in.Replica == 0 {
			return in.Argv
		}
		return []string{"/testagent", "output", "verdict=" + v[in.Replica-1], "report", "replica votes " + v[in.Replica-1]}
	}}
	res := r.run(t, t.Context(), `
agents:
  agree: {replicas: 3, quorum: 2, vote: verdict, command: ["/testagent"]}
  split: {replicas: 3, quorum: 2, vote: verdict, command: ["/testagent"]}
  judged: {replicas: 3, quorum: 2, vote: verdict, judge: pick, command: ["/testagent"]}
  pick:
    needs: [judged]
    command: ["/testagent", "output", "replica=${{ contains(toJSON(needs.judged.outputs), '\"b\"') && 2 || 1 }}"]
  after:
    needs: [agree, judged]
    command: ["/testagent", "output", "got=${{ needs.agree.outputs.verdict }}/${{ needs.judged.outputs.verdict }}"]
  on-split:
    needs: [split]
    if: "${{ failure() && needs.split.result == 'no_quorum' }}"
    command: ["/testagent", "print", "split"]
`)
	if a := agentOf(t, res, "agree"); a.Result != plan.ResultSuccess || a.Vote.Winner != "yes" || !slices.Equal(a.Vote.Dissent, []string{"agree#2 (verdict=no)"}) {
		t.Errorf("agree = %s %+v", a.Result, a.Vote)
	}
	if a := agentOf(t, res, "split"); a.Result != plan.ResultNoQuorum || a.Vote.Reached {
		t.Errorf("split = %s %+v, want no_quorum", a.Result, a.Vote)
	}
	if a := agentOf(t, res, "judged"); a.Result != plan.ResultSuccess || a.Vote.WinningJob != "judged#2" || a.Vote.Judge != "pick" {
		t.Errorf("judged = %s %+v, want judged#2 chosen by pick", a.Result, a.Vote)
	}
	if got := jobOf(t, res, "after").Outputs["got"]; got != "yes/b" {
		t.Errorf("after saw %v, want yes/b", got)
	}
	if agentOf(t, res, "on-split").Result != plan.ResultSuccess {
		t.Errorf("on-split = %s, want it to run on no_quorum", agentOf(t, res, "on-split").Result)
	}
	if res.Conclusion != result.ConclusionFailure || !strings.Contains(res.Report, "**split** (quorum 2 on `verdict`): no quorum") {
		t.Errorf("conclusion = %s, report:\n%s", res.Conclusion, res.Report)
	}
}

func TestDockerFailFastAndContinueOnError(t *testing.T) {
	t.Parallel()
	r := newDockerRig(t)
	start := time.Now()
	res := r.run(t, t.Context(), `
agents:
  ff:
    matrix: {i: [1, 2, 3, 4]}
    max-parallel: 2
    fail-fast: true
    command: ["/testagent", "sleep", "${{ matrix.i == 1 && '0s' || '60s' }}", "exit", "${{ matrix.i == 1 && 1 || 0 }}"]
  coe:
    continue-on-error: true
    matrix: {i: [0, 2]}
    command: ["/testagent", "exit", "${{ matrix.i }}"]
  next:
    needs: [coe]
    command: ["/testagent", "output", "saw=${{ needs.coe.result }}/${{ needs.coe.counts.failed }}"]
`)
	if took := time.Since(start); took > 40*time.Second {
		t.Errorf("fail-fast did not stop the sleepers: the run took %v", took)
	}
	ff := agentOf(t, res, "ff")
	if ff.Result != plan.ResultFailure || ff.Counts["failed"] != 1 || ff.Counts["cancelled"] != 3 {
		t.Errorf("ff = %s %v, want 1 failed and 3 cancelled", ff.Result, ff.Counts)
	}
	if got := jobOf(t, res, "next").Outputs["saw"]; got != "success/1" {
		t.Errorf("next saw %v, want success/1 (continue-on-error)", got)
	}
	if res.Conclusion != result.ConclusionFailure {
		t.Errorf("conclusion = %s", res.Conclusion)
	}
}

func TestDockerCancellationLeavesNothing(t *testing.T) {
	t.Parallel()
	r := newDockerRig(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		// Cancel once two agents are really running.
		for {
			started := 0
			for _, k := range r.rec.kinds() {
				if k == reporters.JobStarted {
					started++
				}
			}
			if started >= 2 {
				time.Sleep(1500 * time.Millisecond)
				cancel()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	start := time.Now()
	res := r.run(t, ctx, `
agents:
  hold:
    matrix: {i: [1, 2, 3]}
    max-parallel: 2
    changes: keep
    command: ["/testagent", "write", "x.txt=x", "hold"]
`)
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("the cancelled run took %v", took)
	}
	assertCancelled(t, res)
	if len(res.Patch) != 0 {
		t.Error("a cancelled run kept changes")
	}
	// dockertest.RunID and newDockerRig check containers and workspaces at cleanup.
}
