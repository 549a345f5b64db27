package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/internal/githubfake"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/server"
)

// chanQueue hands fresh deliveries to a worker, deduplicating ids like the store does.
type chanQueue struct {
	mu   sync.Mutex
	seen map[string]bool
	ch   chan server.Delivery
}

func (q *chanQueue) RecordDelivery(_ context.Context, d server.Delivery) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.seen[d.ID] {
		return false, nil
	}
	q.seen[d.ID] = true
	q.ch <- d
	return true, nil
}

// TestEndToEndPullRequestOnDocker: a signed pull_request.opened delivery → server → queue →
// pipeline → the routine runs in a real container with the test agent → the fake GitHub sees
// the check run go queued → in_progress → completed with annotations, and a pull request whose
// branch really exists, with the agent's change, in the bare repository standing in for GitHub.
func TestEndToEndPullRequestOnDocker(t *testing.T) {
	image := dockertest.TestAgentImage(t)
	runID := dockertest.RunID(t)
	ctx := t.Context()
	pwned := filepath.Join(t.TempDir(), "pwned")
	title := fmt.Sprintf("$(touch %s); rm -rf / `touch %s` ${HOME}", pwned, pwned)

	yaml := `name: review
on:
  pull_request: {types: [opened]}
defaults:
  image: ` + image + `
  timeout: 2m
  resources: {cpus: 0.5, memory: 128m, pids: 64}
agents:
  fix:
    prompt: "Review this pull request: ${{ event.pull_request.title }}"
    command: ["/testagent", "write", "fix.txt=fixed by the agent\n", "finding", "README.md:1:warning:typo in the greeting", "finding", "fix.txt:1:notice:added", "report", "Fixed one typo.", "echo-prompt"]
    changes: keep
publish:
  check: true
  pull-request: {title: "Review fixes", draft: true}
`
	r := newRemote(t, map[string]string{".agents/review.yaml": yaml, "README.md": "helo\n"}, map[string]string{"src/a.txt": "a\n"})

	f := githubfake.New(t)
	p := dockerPipeline(t, f, runID)

	q := &chanQueue{seen: map[string]bool{}, ch: make(chan server.Delivery, 4)}
	secret := []byte("e2e-secret")
	srv, err := server.New(server.Config{WebhookSecret: secret, Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	body := marshal(t, prPayload(t, r, title, ""))
	post := func() int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+server.WebhookPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "pull_request")
		req.Header.Set("X-GitHub-Delivery", "e2e-1")
		req.Header.Set(github.SignatureHeader, github.Sign(secret, body))
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(); code != http.StatusAccepted {
		t.Fatalf("delivery answered %d, want 202", code)
	}
	if code := post(); code != http.StatusAccepted { // GitHub retrying: acknowledged, not queued again
		t.Fatalf("duplicate answered %d", code)
	}

	var d server.Delivery
	select {
	case d = <-q.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing queued")
	}
	runs, err := p.HandleDelivery(ctx, d.Event, d.ID, d.Body)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case extra := <-q.ch:
		t.Fatalf("the duplicate delivery %s was queued too", extra.ID)
	default:
	}
	if len(runs) != 1 {
		t.Fatalf("runs = %d", len(runs))
	}
	res := runs[0]
	if res.Conclusion != result.ConclusionSuccess {
		j := res.Jobs[0]
		t.Fatalf("conclusion %s: job %s %s %s\n%s", res.Conclusion, j.ID, j.Outcome, j.Error, j.LogTail)
	}

	// The check run, as GitHub saw it.
	crs := f.CheckRuns()
	if len(crs) != 1 {
		t.Fatalf("check runs = %d", len(crs))
	}
	c := crs[0]
	if got := fmt.Sprint(c.History); got != "[queued in_progress completed]" {
		t.Errorf("check run history = %s", got)
	}
	if c.Name != "agents/review" || c.Conclusion != "success" || c.HeadSHA != r.head || c.ExternalID != runID {
		t.Errorf("check run = %+v", c)
	}
	if len(c.Annotations) != 2 || c.Annotations[0]["path"] != "README.md" || c.Annotations[0]["annotation_level"] != "warning" ||
		c.Annotations[1]["annotation_level"] != "notice" {
		t.Errorf("annotations = %v", c.Annotations)
	}
	if !strings.Contains(c.Summary, "Fixed one typo.") {
		t.Errorf("summary = %q", c.Summary)
	}

	// The pull request, and its branch in the bare repository, committed by the runner.
	prs := f.PullRequests()
	if len(prs) != 1 || prs[0].Head != "agents/review/pr-2" || prs[0].Base != "changes" || !prs[0].Draft || prs[0].Title != "Review fixes" {
		t.Fatalf("pull requests = %+v", prs)
	}
	if got := gittest.Git(t, r.dir, "show", "agents/review/pr-2:fix.txt"); got != "fixed by the agent" {
		t.Errorf("fix.txt on the branch = %q", got)
	}
	if parent := gittest.Git(t, r.dir, "rev-parse", "agents/review/pr-2^"); parent != r.head {
		t.Errorf("the branch's commit sits on %s, want the PR head %s", parent, r.head)
	}
	if author := gittest.Git(t, r.dir, "log", "-1", "--format=%an", "agents/review/pr-2"); author == "" {
		t.Error("no author on the runner's commit")
	}

	// Event text arrived verbatim in the prompt and was never run by anything.
	log, err := os.ReadFile(filepath.Join(p.RunsDir, runID, "jobs", "fix", "log.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "Review this pull request: "+title) {
		t.Errorf("the prompt did not arrive verbatim; log:\n%s", log)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Error("the pull request title was executed")
	}
	// Nothing left behind: the job's workspace is gone (containers are checked by RunID).
	if left, _ := filepath.Glob(filepath.Join(p.Workspaces.Root(), runID, "*")); len(left) != 0 {
		t.Errorf("workspaces left: %v", left)
	}
}
