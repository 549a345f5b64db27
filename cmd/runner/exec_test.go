package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/internal/fixture"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

// gitRepo makes a real git repository with the given files committed on main.
func gitRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "-A"},
		{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

// runCLI runs the runner's CLI in this process. An exec runs its agents on workspaces of the
// mode under test (dockertest.EnvWorkspace), unless the test picks one.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if len(args) > 0 && args[0] == "exec" && !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--workspace") }) {
		if m := os.Getenv(dockertest.EnvWorkspace); m != "" {
			args = append([]string{"exec", "--workspace", m}, args[1:]...)
		}
	}
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, nil, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestExecDryRunExplainsWhatRunsAndWhatDoesNot(t *testing.T) {
	repo := gitRepo(t, map[string]string{
		"README.md": "hi\n",
		".agents/review.yaml": "on: {pull_request: {branches: [main]}}\ndefaults: {image: agentrunner/testagent:dev}\n" +
			"agents:\n  look: {command: [\"/testagent\", \"print\", \"${{ event.pull_request.title }}\"]}\n",
		".agents/nightly.yaml": "on: {push: {branches: [main]}}\ndefaults: {image: agentrunner/testagent:dev}\n" +
			"agents:\n  plan: {command: [\"/testagent\", \"output\", \"n=1\"]}\n  fan: {needs: plan, matrix: {x: [a, b, c]}, command: [\"/testagent\", \"print\", \"${{ matrix.x }}\"]}\n",
	})
	chdir(t, repo)
	code, out, errOut := runCLI(t, "exec", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"event: push on main", "○ review: skipped", "● nightly", "fan", "fan[a]", "fan[c]", "3 jobs"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = runCLI(t, "exec", "--dry-run", "--json", "--event", "pull_request")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var p plan.Plan
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("--json is not a plan: %v\n%s", err, out)
	}
	if len(p.Runs) != 1 || p.Runs[0].Routine != "review" {
		t.Fatalf("a pull_request event should run only review, got %+v", p.Runs)
	}
}

func TestExecReplaysARealWebhookPayload(t *testing.T) {
	repo := gitRepo(t, map[string]string{
		".agents/review.yaml": "on: {pull_request: {branches: [master]}}\ndefaults: {image: agentrunner/testagent:dev}\n" +
			"agents:\n  look: {command: [\"/testagent\", \"print\", \"${{ event.pull_request.title }}\"]}\n",
	})
	payload := fixture.GitHubPath(t, "webhooks/pull_request.opened.json")
	chdir(t, repo)
	code, out, errOut := runCLI(t, "exec", "--dry-run", "--event-file", payload)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "event: pull_request (opened)") || !strings.Contains(out, "● review") {
		t.Errorf("the real pull_request.opened payload should run review:\n%s", out)
	}
}

func TestExecUsageErrors(t *testing.T) {
	repo := gitRepo(t, map[string]string{".agents/a.yaml": "on: push\ndefaults: {image: i}\nagents:\n  a: {command: [x]}\n"})
	chdir(t, repo)
	for _, args := range [][]string{
		{"exec", "--progress", "fancy", "--dry-run"},
		{"exec", "--input", "novalue", "--dry-run"},
		{"exec", "a", "b"},
	} {
		if code, _, errOut := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errOut)
		}
	}
	if code, _, errOut := runCLI(t, "exec", "--dry-run", "nosuch"); code != 1 || !strings.Contains(errOut, `no routine "nosuch"`) {
		t.Errorf("unknown routine: exit %d, stderr %q", code, errOut)
	}
}

// TestExecRunsInDocker runs a routine for real: an agent edits files in its container, the
// combined patch lands under .agents/.runs, --apply applies it, and nothing is left behind.
func TestExecRunsInDocker(t *testing.T) {
	cli := dockertest.Client(t)
	dockertest.TestAgentImage(t)
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	repo := gitRepo(t, map[string]string{
		"README.md": "old\n",
		"gone.txt":  "bye\n",
		".agents/fix.yaml": `on: push
defaults: {image: agentrunner/testagent:dev, timeout: 2m}
agents:
  edit:
    command: ["/testagent", "write", "README.md=new\n", "delete", "gone.txt", "output", "done=yes", "report", "Edited."]
    changes: keep
  check:
    needs: edit
    if: "${{ needs.edit.outputs.done == 'yes' }}"
    command: ["/testagent", "print", "checked"]
`,
	})
	chdir(t, repo)
	code, out, errOut := runCLI(t, "exec", "--progress", "plain", "--apply")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"edit", "success", "fix: success"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	runs, err := filepath.Glob(filepath.Join(repo, ".agents", ".runs", "2*"))
	if err != nil || len(runs) != 1 {
		t.Fatalf("want one run directory, got %v (%v)", runs, err)
	}
	runID := filepath.Base(runs[0])
	dockertest.AssertNoLeftovers(t, cli, runID)
	var res result.Run
	b, err := os.ReadFile(filepath.Join(runs[0], "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if res.Conclusion != result.ConclusionSuccess || len(res.Jobs) != 2 || res.Jobs[1].Outcome != result.Success {
		t.Errorf("result = %s with jobs %+v", res.Conclusion, res.Jobs)
	}
	patch, err := os.ReadFile(filepath.Join(runs[0], "combined.patch"))
	if err != nil || !strings.Contains(string(patch), "+new") || !strings.Contains(string(patch), "deleted file mode") {
		t.Errorf("combined.patch = %q (%v)", patch, err)
	}
	if b, _ := os.ReadFile(filepath.Join(repo, "README.md")); string(b) != "new\n" {
		t.Errorf("--apply: README.md = %q, want the agent's edit", b)
	}
	if _, err := os.Stat(filepath.Join(repo, "gone.txt")); !os.IsNotExist(err) {
		t.Errorf("--apply: gone.txt should be deleted, stat err = %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(cache, "agentrunner", "exec", "*")); len(left) > 0 {
		t.Errorf("workspaces left behind: %v", left)
	}
	// Agents' workspaces (git repositories with their own .git) never live in the repository.
	if entries, _ := os.ReadDir(filepath.Join(repo, ".agents", ".runs")); len(entries) != 2 {
		t.Errorf(".agents/.runs holds %v, want only .gitignore and the run's results", entries)
	}
}

func TestExecExitsOneWhenAnAgentFails(t *testing.T) {
	dockertest.Client(t)
	dockertest.TestAgentImage(t)
	repo := gitRepo(t, map[string]string{
		".agents/bad.yaml": "on: push\ndefaults: {image: agentrunner/testagent:dev, timeout: 1m}\nagents:\n  boom: {command: [\"/testagent\", \"eprint\", \"kaput\", \"exit\", \"3\"]}\n",
	})
	chdir(t, repo)
	code, out, errOut := runCLI(t, "exec", "--progress", "plain")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "failed") || !strings.Contains(out, "exit 3") {
		t.Errorf("the summary should show the failure and its exit code:\n%s", out)
	}
}

// We use agentrunner on itself: our own routines and the demo's must always validate.
func TestOwnRoutinesValidate(t *testing.T) {
	for _, dir := range []string{"../../.agents", "../../examples/demo/.agents"} {
		if code, out, errOut := runCLI(t, "validate", dir); code != 0 {
			t.Errorf("%s does not validate (exit %d):\n%s%s", dir, code, out, errOut)
		}
	}
}

// TestExecSaysWhyNothingRuns: on a branch the routine does not listen to, exec runs nothing
// and names the routine with the reason, without a detour through --dry-run.
func TestExecSaysWhyNothingRuns(t *testing.T) {
	repo := gitRepo(t, map[string]string{
		".agents/t.yaml": "on: {push: {branches: [main]}}\nagents:\n  a: {image: agentrunner/testagent:dev, command: [\"/testagent\", \"print\", \"hi\"]}\n",
	})
	cmd := exec.Command("git", "checkout", "-q", "-b", "feature")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	chdir(t, repo)
	code, out, errOut := runCLI(t, "exec", "t")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, `t: branch "feature" not in branches`) {
		t.Errorf("stderr does not say why t did not run:\n%s", errOut)
	}
}

// --prompt hands a free-text task to a routine's prompt input, and the dry run shows an
// orchestrator as what it is: a workflow that expands at run time, within its envelope.
func TestExecPromptAndAnOrchestratorInTheDryRun(t *testing.T) {
	repo := gitRepo(t, map[string]string{
		".agents/migrate.yaml": `on:
  dispatch:
    inputs: {prompt: {required: true}}
secrets: [ANTHROPIC_API_KEY]
agents:
  lead:
    uses: claude-code
    image: agentrunner/testagent:dev
    prompt: "${{ inputs.prompt }}"
    orchestrate: {max-agents: 60, max-instances: 24, timeout: 2h}
`,
	})
	chdir(t, repo)
	code, out, errOut := runCLI(t, "exec", "migrate", "--prompt", "migrate every service off the old client; use a workflow", "--dry-run")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"prompt: migrate every service off the old client; use a workflow",
		"orchestrates: writes a workflow that expands at run time, within images agentrunner/testagent:dev, 60 instances in all (24 per agent), network none, 2h0m0s, 3 attempts, depth 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := runCLI(t, "exec", "migrate", "--prompt", "a", "--input", "prompt=b", "--dry-run"); code != exitUsage || !strings.Contains(errOut, "keep one") {
		t.Errorf("--prompt with --input prompt=: exit %d %s", code, errOut)
	}
}
