package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

// failingSandbox fails the named job with an error that quotes text (as a Docker error that
// echoes an environment value would).
type failingSandbox struct {
	Sandbox
	job, text string
}

func (f failingSandbox) Run(ctx context.Context, t *Task, logs io.Writer) (*Exit, error) {
	if t.Instance.ID == f.job {
		return nil, fmt.Errorf("create container: bad env %s", f.text)
	}
	return f.Sandbox.Run(ctx, t, logs)
}

// leaks lists where in what a run keeps or publishes any of the values occurs: the result as
// JSON, the combined report and patch, every reporter update, and the files the runner wrote
// in the run directory. The agent's own output directories are left out: they hold what the
// agent wrote, and the runner neither publishes nor serves them.
func leaks(t *testing.T, res *result.Run, rec *recorder, runDir string, skipLogs bool, values ...string) []string {
	t.Helper()
	var out []string
	check := func(where string, b []byte) {
		for _, v := range values {
			if strings.Contains(string(b), v) {
				out = append(out, fmt.Sprintf("%s holds %q", where, v))
			}
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	check("the result", b)
	check("the combined patch", res.Patch)
	for _, j := range res.Jobs {
		if j.Changes != nil && j.Changes.PatchFile != "" {
			b, err := os.ReadFile(j.Changes.PatchFile)
			if err != nil {
				t.Fatal(err)
			}
			check("the patch of "+j.ID, b)
		}
	}
	rec.mu.Lock()
	// An instance's argv is what the routine's YAML says (in these tests it quotes the
	// values): not what an agent wrote. Its prompt is checked: needs.* reach it.
	noArgv := func(in *plan.Instance) *plan.Instance {
		if in == nil {
			return nil
		}
		cp := *in
		cp.Argv = nil
		return &cp
	}
	for _, u := range rec.updates {
		u.Run = nil // the plan, as the YAML says it
		u.Instance = noArgv(u.Instance)
		ins := make([]*plan.Instance, len(u.Instances))
		for i, in := range u.Instances {
			ins[i] = noArgv(in)
		}
		u.Instances = ins
		b, err := json.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("the %s update", u.Kind), b)
	}
	rec.mu.Unlock()
	err = filepath.WalkDir(runDir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && d.Name() == "out":
			return filepath.SkipDir
		case !d.Type().IsRegular(), skipLogs && d.Name() == "log.txt":
			return nil
		}
		b, err := os.ReadFile(p)
		check(p, b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runDirOf is the run directory, found from a job's log.
func runDirOf(t *testing.T, res *result.Run) string {
	t.Helper()
	for _, j := range res.Jobs {
		if j.LogPath != "" {
			return filepath.Dir(filepath.Dir(filepath.Dir(j.LogPath)))
		}
	}
	t.Fatal("no job has a log")
	return ""
}

func TestSecretValuesAreMaskedInResultsAndRefusedInChanges(t *testing.T) {
	t.Parallel()
	const token, pin = "s3cr3t-Value-9f2e", "424242"
	h, repo, sha := gitHarness(t)
	h.eng.Sandbox = failingSandbox{Sandbox: h.eng.Sandbox, job: "broken", text: "TOKEN=" + token}
	p := routine(t, `
secrets: [TOKEN, PIN]
agents:
  leak:
    secrets: [TOKEN, PIN]
    changes: keep
    command: ["/testagent", "report", "the token is `+token+`",
      "output", "k=Bearer `+token+`", "output-json", 'nested={"`+token+`": ["in a list `+token+`"], "pin": `+pin+`}',
      "finding", "src/`+token+`.go:3:warning:hard-coded `+token+`",
      "write", "config.env=TOKEN=`+token+`\n"]
  clean:
    changes: keep
    command: ["/testagent", "write", "clean.txt=nothing to hide\n"]
  after:
    needs: [leak]
    if: "${{ always() }}"
    prompt: "Build on: ${{ needs.leak.report }} ${{ needs.leak.outputs.k }}"
    command: ["/testagent", "output", "seen=${{ needs.leak.outputs.k }}", "echo-prompt"]
  broken:
    command: ["/testagent"]
`, sha)
	res := h.run(t, t.Context(), p, map[string]string{"TOKEN": token, "PIN": pin, "UNUSED": ""})

	leak := jobOf(t, res, "leak")
	if leak.Outcome != result.Failed || !strings.Contains(leak.Error, "changes contain a secret value (the value of TOKEN)") {
		t.Errorf("leak = %s %q, want failed: its changes hold a secret", leak.Outcome, leak.Error)
	}
	if leak.Changes != nil {
		t.Errorf("the refused changes were kept: %+v", leak.Changes.Files)
	}
	if leak.Report != "the token is ***\n" || leak.Outputs["k"] != "Bearer ***" {
		t.Errorf("report %q, outputs %v: want the token masked", leak.Report, leak.Outputs)
	}
	if got, _ := json.Marshal(leak.Outputs["nested"]); string(got) != `{"***":["in a list ***"],"pin":"***"}` {
		t.Errorf("nested output = %s", got)
	}
	if len(leak.Findings) != 1 || leak.Findings[0].Path != "src/***.go" || leak.Findings[0].Message != "hard-coded ***" {
		t.Errorf("findings = %+v", leak.Findings)
	}
	if got := jobOf(t, res, "after").Outputs["seen"]; got != "Bearer ***" {
		t.Errorf("a dependent saw %v, want the masked output", got)
	}
	if b := jobOf(t, res, "broken"); b.Outcome != result.Error || b.Error != "create container: bad env TOKEN=***" {
		t.Errorf("broken = %s %q, want its error masked", b.Outcome, b.Error)
	}
	if !slices.Equal(res.Applied, []string{"clean"}) || applyTo(t, repo, sha, res.Patch)["clean.txt"] != "nothing to hide\n" {
		t.Errorf("applied %v: the clean agent's changes must still be kept", res.Applied)
	}
	// The fake sandbox does not mask logs (the real one does; see the Docker test).
	for _, l := range leaks(t, res, h.rec, runDirOf(t, res), true, token, pin) {
		t.Error(l)
	}
}

// A preset's final message and error come from the agent's output: masked too.
func TestSecretValuesAreMaskedInPresetResults(t *testing.T) {
	t.Parallel()
	const token = "s3cr3t-Value-77ab"
	h := newHarness(t)
	h.sb.argv = func(in *plan.Instance) []string {
		return []string{"/testagent", "print", `{"type":"result","subtype":"success","is_error":true,"result":"could not use ` + token + `"}`}
	}
	p := routine(t, `
secrets: [TOKEN]
agents:
  claude:
    uses: claude-code
    secrets: [TOKEN]
    prompt: "do it"
`, "")
	res := h.run(t, t.Context(), p, map[string]string{"TOKEN": token})
	j := jobOf(t, res, "claude")
	if j.Outcome != result.Failed || !strings.Contains(j.Error, "could not use ***") || j.Final != "could not use ***" {
		t.Errorf("claude = %s, error %q, final %q: want both masked", j.Outcome, j.Error, j.Final)
	}
	for _, l := range leaks(t, res, h.rec, runDirOf(t, res), true, token) {
		t.Error(l)
	}
}

// A value written into a binary file is in the patch only compressed and encoded: it is found
// all the same, in a new file (a literal hunk) and in an edit of a large one (a delta).
func TestSecretValuesInBinaryChangesAreRefused(t *testing.T) {
	t.Parallel()
	const token = "s3cr3t-in-binary-5c1d"
	dir := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t.invalid"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = byte(i * 7 % 251)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q")
	write("big.bin", big)
	git("add", "-A")
	git("commit", "-q", "-m", "base")
	edited := slices.Concat(big[:30000], []byte(token), big[30000:])
	write("big.bin", edited)
	write("new.bin", append([]byte{0, 1, 2}, token...))
	git("add", "-A")
	patch := git("diff", "--cached", "--binary", "--full-index")
	if strings.Contains(patch, token) || !strings.Contains(patch, "delta ") || !strings.Contains(patch, "literal ") {
		t.Fatalf("want a delta and a literal hunk that hide the value:\n%.600s", patch)
	}
	r := newRedactor(map[string]string{"TOKEN": token})
	if why := r.refuseSecretChanges([]byte(patch)); !strings.Contains(why, "the value of TOKEN") {
		t.Errorf("refuse = %q, want the binary changes refused", why)
	}
	found := 0
	binaryHunks([]byte(patch), func(h io.Reader) bool {
		if _, ok := streamHolds(h, []string{token}); ok {
			found++
		}
		return true
	})
	if found != 2 {
		t.Errorf("found the value in %d hunks, want 2 (the delta and the literal)", found)
	}
	if why := newRedactor(map[string]string{"TOKEN": "not-in-there"}).refuseSecretChanges([]byte(patch)); why != "" {
		t.Errorf("a patch without the value was refused: %s", why)
	}
}

// streamHolds finds a value wherever it falls, also across the windows it reads in.
func TestStreamHoldsAcrossWindows(t *testing.T) {
	t.Parallel()
	const v = "needle-value"
	for _, at := range []int{0, 64<<10 - 5, 64 << 10, 3*(64<<10) - 1, 300000} {
		data := slices.Concat(make([]byte, at), []byte(v), make([]byte, 1000))
		if got, ok := streamHolds(bytes.NewReader(data), []string{"other", v}); !ok || got != v {
			t.Errorf("value at %d: got %q, %v", at, got, ok)
		}
	}
	if _, ok := streamHolds(bytes.NewReader(make([]byte, 1<<20)), []string{v}); ok {
		t.Error("found a value that is not there")
	}
}
