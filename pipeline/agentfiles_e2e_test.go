package pipeline_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/internal/githubfake"
	"github.com/agentrunner/agentrunner/internal/gittest"
)

// What agents hand back reaches GitHub only after the runner read it safely and masked it: an
// agent that symlinks its report to a host file, and one that writes its secret into its
// report, a finding and a file it keeps, leave neither in the check run, the pull request, its
// comment or the pushed branch; a clean agent's change is still published.
func TestEndToEndHostFilesAndSecretsStayOffGitHub(t *testing.T) {
	image := dockertest.TestAgentImage(t)
	runID := dockertest.RunID(t)
	ctx := t.Context()
	const marker, secret = "HOST-MARKER-e2e-41d7", "s3cr3t-value" // secret: newPipeline's API_KEY
	host := filepath.Join(t.TempDir(), "host.md")
	if err := os.WriteFile(host, []byte(marker), 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := `name: review
on:
  pull_request: {types: [opened]}
secrets: [API_KEY]
defaults:
  image: ` + image + `
  timeout: 2m
  resources: {cpus: 0.5, memory: 128m, pids: 64}
agents:
  steal:
    continue-on-error: true
    command: ["/testagent", "symlink", "@out/report.md=` + host + `", "symlink", "@out/findings.json=` + host + `"]
  leak:
    continue-on-error: true
    secrets: [API_KEY]
    changes: keep
    command: ["/testagent", "report", "key ` + secret + `", "finding", "README.md:1:warning:key ` + secret + `", "write", "key.txt=` + secret + `\n"]
  fix:
    changes: keep
    command: ["/testagent", "write", "fix.txt=fixed\n", "report", "Fixed."]
publish:
  check: true
  comment: true
  pull-request: {title: "Review fixes"}
`
	r := newRemote(t, map[string]string{".agents/review.yaml": yaml, "README.md": "helo\n"}, map[string]string{"src/a.txt": "a\n"})
	f := githubfake.New(t)
	p := dockerPipeline(t, f, runID)

	runs, err := p.HandleDelivery(ctx, "pull_request", "e2e-hostile", marshal(t, prPayload(t, r, "hostile agents", "")))
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs = %d, %v", len(runs), err)
	}
	res := runs[0]
	for id, want := range map[string]string{"steal": "report.md is not a regular file (a symlink)", "leak": "changes contain a secret value (the value of API_KEY)"} {
		if j := res.Job(id); j == nil || !strings.Contains(j.Error, want) {
			t.Errorf("job %s: %+v, want an error saying %q", id, j, want)
		}
	}

	var published []string
	for _, c := range f.CheckRuns() {
		published = append(published, c.Title, c.Summary, c.Text, fmt.Sprint(c.Annotations))
	}
	prs := f.PullRequests()
	for _, pr := range prs {
		published = append(published, pr.Title, pr.Body)
	}
	for _, c := range f.Comments() {
		published = append(published, c.Body)
	}
	if len(f.CheckRuns()) != 1 || len(prs) != 1 || len(f.Comments()) != 1 {
		t.Fatalf("published %d check runs, %d pull requests, %d comments; want one each", len(f.CheckRuns()), len(prs), len(f.Comments()))
	}
	// What the runner pushed: its commits on top of the pull request's head (whose routine
	// file quotes both values).
	published = append(published, gittest.Git(t, r.dir, "log", "-p", prs[0].Head, "^"+r.head))
	for _, text := range published {
		for _, v := range []string{marker, secret} {
			if strings.Contains(text, v) {
				t.Errorf("GitHub got %q:\n%s", v, text)
			}
		}
	}
	if got := gittest.Git(t, r.dir, "show", prs[0].Head+":fix.txt"); got != "fixed" {
		t.Errorf("fix.txt on the pull request's branch = %q", got)
	}
	if !strings.Contains(f.CheckRuns()[0].Summary+f.CheckRuns()[0].Text, "key ***") {
		t.Errorf("the check run does not show the masked report:\n%s\n%s", f.CheckRuns()[0].Summary, f.CheckRuns()[0].Text)
	}
}
