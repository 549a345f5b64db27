package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner/result"
)

// An agent replaces its output files with symlinks to host files (the runner's secrets, say):
// the runner, reading as its own user, must refuse them and show their content nowhere: not in
// the job, the combined report, a dependent's prompt or the run directory.
func TestDockerOutputSymlinksToHostFilesAreRefused(t *testing.T) {
	t.Parallel()
	r := newDockerRig(t)
	const marker = "HOST-MARKER-5e0c9a71"
	host := t.TempDir() // outside the run directory
	files := map[string]string{
		"report.md":     "# " + marker + "\n",
		"outputs.json":  `{"stolen": "` + marker + `"}`,
		"findings.json": `[{"path": "x", "line": 1, "level": "warning", "message": "` + marker + `"}]`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(host, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res := r.run(t, t.Context(), `
agents:
  steal:
    command: ["/testagent",
      "symlink", "@out/report.md=`+filepath.Join(host, "report.md")+`",
      "symlink", "@out/outputs.json=`+filepath.Join(host, "outputs.json")+`",
      "symlink", "@out/findings.json=`+filepath.Join(host, "findings.json")+`"]
  environ:
    command: ["/testagent", "symlink", "@out/report.md=/proc/self/environ"]
  after:
    needs: [steal]
    if: "${{ always() }}"
    prompt: "${{ needs.steal.report }} ${{ toJSON(needs.steal.outputs) }}"
    command: ["/testagent", "echo-prompt"]
`)
	steal := jobOf(t, res, "steal")
	for name := range files {
		if want := name + " is not a regular file (a symlink)"; !strings.Contains(steal.Error, want) {
			t.Errorf("steal error %q, want it to say %q", steal.Error, want)
		}
	}
	if steal.Outcome != result.Failed || steal.Report != "" || len(steal.Outputs) != 0 || len(steal.Findings) != 0 {
		t.Errorf("steal = %s, report %q, outputs %v, findings %v: want failed with nothing read", steal.Outcome, steal.Report, steal.Outputs, steal.Findings)
	}
	if env := jobOf(t, res, "environ"); env.Outcome != result.Failed || !strings.Contains(env.Error, "report.md is not a regular file (a symlink)") || strings.Contains(env.Report, "PATH=") {
		t.Errorf("environ = %s %q, report %q: want the link refused", env.Outcome, env.Error, env.Report)
	}
	if !strings.Contains(res.Report, "report.md is not a regular file (a symlink)") {
		t.Errorf("the run's report does not say why steal failed:\n%s", res.Report)
	}
	for _, l := range leaks(t, res, r.rec, runDirOf(t, res), false, marker) {
		t.Error(l)
	}
}

// What an agent leaves in its output directory stays there (`runner exec` keeps it under
// .agents/.runs/ in the user's repository) only as plain files and directories: a planted git
// repository would run its config's commands when an editor or a shell prompt runs git inside
// it, and a symlink would lead whoever opens it to a host file.
func TestDockerOutputDirectoryKeepsOnlyPlainData(t *testing.T) {
	t.Parallel()
	r := newDockerRig(t)
	res := r.run(t, t.Context(), `
agents:
  plant:
    command: ["/testagent",
      "write", "/agent/out/notes/keep.txt=plain",
      "write", "/agent/out/notes/.git/config=[core]\n\tfsmonitor = touch /tmp/pwned\n",
      "write", "/agent/out/.git=gitdir: /etc",
      "symlink", "@out/notes/host=/etc/passwd",
      "mkfifo", "@out/pipe",
      "chmod", "/agent/out/notes/keep.txt=4755"]
`)
	if j := jobOf(t, res, "plant"); j.Outcome != result.Success {
		t.Fatalf("plant = %s %q", j.Outcome, j.Error)
	}
	out := filepath.Join(runDirOf(t, res), "jobs", "plant", "out")
	for _, name := range []string{"notes/.git", ".git", "notes/host", "pipe"} {
		if _, err := os.Lstat(filepath.Join(out, name)); !os.IsNotExist(err) {
			t.Errorf("%s is still in the output directory (%v)", name, err)
		}
	}
	info, err := os.Lstat(filepath.Join(out, "notes", "keep.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if m := info.Mode(); m != 0o644 {
		t.Errorf("keep.txt has mode %v, want plain 0644 (no set-uid, no execute)", m)
	}
}

// A FIFO in place of outputs.json must not hang the runner: opening it for reading would wait
// for a writer that never comes, and even a cancelled context could not stop that.
func TestDockerOutputFIFODoesNotHang(t *testing.T) {
	t.Parallel()
	r := newDockerRig(t)
	p := routine(t, `defaults: {image: agentrunner/testagent:dev, timeout: 2m, resources: {memory: 64m, pids: 64}}
agents:
  fifo:
    command: ["/testagent", "mkfifo", "@out/outputs.json", "mkfifo", "@out/report.md"]
`, r.sha)
	done := make(chan *result.Run, 1)
	start := time.Now()
	go func() {
		res, err := r.eng.Run(t.Context(), &reporters.RunInfo{ID: r.runID, Repo: "o/r", Plan: p}, RunOptions{Dir: t.TempDir()})
		if err != nil {
			t.Errorf("run: %v", err)
		}
		done <- res
	}()
	var res *result.Run
	select {
	case res = <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("the run still hangs 90s after it started: a FIFO in the output directory blocks the runner")
	}
	if res == nil {
		return
	}
	j := jobOf(t, res, "fifo")
	// The container's own run takes a second or two; reading its outputs must add nothing.
	after := time.Since(start) - j.Duration()
	t.Logf("run took %v, of which the container %v", time.Since(start), j.Duration())
	if after > 20*time.Second {
		t.Errorf("the run ended %v after the container", after)
	}
	for _, want := range []string{"outputs.json is not a regular file (a named pipe)", "report.md is not a regular file (a named pipe)"} {
		if j.Outcome != result.Failed || !strings.Contains(j.Error, want) {
			t.Errorf("fifo = %s %q, want failed saying %q", j.Outcome, j.Error, want)
		}
	}
}

// A secret given to an agent, which writes it into its report, outputs, a finding, its log
// and a file it keeps: no stored or published part of the run holds the value, and the
// changes are refused rather than published.
func TestDockerSecretValuesStayOutOfTheResult(t *testing.T) {
	t.Parallel()
	r := newDockerRig(t)
	const token = "tok-SECRET-3b7d91c2"
	p := routine(t, `defaults: {image: agentrunner/testagent:dev, timeout: 2m, resources: {memory: 64m, pids: 64}}
secrets: [TOKEN]
agents:
  leak:
    secrets: [TOKEN]
    changes: keep
    command: ["/testagent", "env", "report", "using `+token+`", "output", "auth=Bearer `+token+`",
      "finding", "app.cfg:1:warning:`+token+` is hard-coded", "write", "app.cfg=token = `+token+`\n"]
  clean:
    changes: keep
    command: ["/testagent", "write", "notes.txt=no secrets here\n"]
`, r.sha)
	dir := t.TempDir()
	res, err := r.eng.Run(t.Context(), &reporters.RunInfo{ID: r.runID, Repo: "o/r", Plan: p}, RunOptions{Dir: dir, Secrets: map[string]string{"TOKEN": token}})
	if err != nil {
		t.Fatal(err)
	}
	leak := jobOf(t, res, "leak")
	if leak.Outcome != result.Failed || !strings.Contains(leak.Error, "changes contain a secret value (the value of TOKEN)") {
		t.Errorf("leak = %s %q, want its changes refused", leak.Outcome, leak.Error)
	}
	if leak.Report != "using ***\n" || leak.Outputs["auth"] != "Bearer ***" || len(leak.Findings) != 1 || leak.Findings[0].Message != "*** is hard-coded" {
		t.Errorf("report %q, outputs %v, findings %+v: want the value masked", leak.Report, leak.Outputs, leak.Findings)
	}
	if !strings.Contains(leak.LogTail, "TOKEN=***") {
		t.Errorf("the agent did not have its secret: log %q", leak.LogTail)
	}
	if files := applyTo(t, r.repo, r.sha, res.Patch); files["notes.txt"] != "no secrets here\n" || files["app.cfg"] != "" {
		t.Errorf("the combined patch must hold clean's changes only: %v", keys(files))
	}
	if _, err := os.Stat(filepath.Join(dir, "jobs", "leak", "changes.patch")); err == nil {
		t.Error("the refused patch was written to the run directory")
	}
	for _, l := range leaks(t, res, r.rec, dir, false, token) {
		t.Error(l)
	}
}
