package pipeline_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/internal/fixture"
	"github.com/agentrunner/agentrunner/internal/githubfake"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/pipeline"
	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/workspace"
)

const (
	owner    = "Codertocat"
	repoName = "Hello-World"
	token    = "ghs_pipeline_test_token"
)

func readPayload(t testing.TB, name string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(fixture.Webhook(t, name), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func marshal(t testing.TB, m map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func obj(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m = m[p].(map[string]any)
	}
	return m
}

// remote is a bare repository standing in for GitHub: master holds baseFiles, branch
// `changes` adds headFiles on top.
type remote struct {
	dir, url   string
	base, head string
}

func newRemote(t testing.TB, baseFiles, headFiles map[string]string) *remote {
	t.Helper()
	r := &remote{dir: filepath.Join(t.TempDir(), "Hello-World.git")}
	r.url = "file://" + r.dir
	r.base, r.head = gittest.PullRequestRemote(t, r.dir, baseFiles, headFiles)
	return r
}

// prPayload is the real pull_request.opened payload pointed at r.
func prPayload(t testing.TB, r *remote, title, headRepo string) map[string]any {
	t.Helper()
	m := readPayload(t, "pull_request.opened.json")
	obj(m, "repository")["clone_url"] = r.url
	pr := obj(m, "pull_request")
	pr["title"] = title
	obj(pr, "head")["sha"] = r.head
	obj(pr, "base")["sha"] = r.base
	if headRepo != "" {
		obj(pr, "head", "repo")["full_name"] = headRepo
	}
	return m
}

func newGitHub(t testing.TB, f *githubfake.Fake) *github.Client {
	t.Helper()
	f.AddToken(token)
	c, err := github.NewClient(t.Context(), github.Config{BaseURL: f.URL(), Token: token, Clock: githubfake.NewClock(time.Now())})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newPipeline(t testing.TB, f *githubfake.Fake, sb runner.Sandbox) *pipeline.Pipeline {
	t.Helper()
	wsm, err := workspace.NewManager(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wsm.Close() })
	return &pipeline.Pipeline{GitHub: newGitHub(t, f), Workspaces: wsm, Sandbox: sb, RunsDir: t.TempDir(),
		Secrets: map[string]string{"API_KEY": "s3cr3t-value"}, DetailsURL: func(id string) string { return "https://runner.example/runs/" + id }}
}

// dockerPipeline is newPipeline on the real Docker engine, its workspaces owned by the test
// agent's user, its run named runID (from dockertest.RunID, which checks what is left).
func dockerPipeline(t testing.TB, f *githubfake.Fake, runID string) *pipeline.Pipeline {
	t.Helper()
	docker, err := sandbox.Connect(t.Context(), sandbox.Options{})
	if err != nil {
		t.Fatalf("Docker: %v", err)
	}
	p := newPipeline(t, f, &runner.Containers{Sandbox: docker})
	// Docker mounts overlays, so this runs in the workspace mode under test.
	wsm, err := workspace.NewManager(t.TempDir(), workspace.WithMode(workspace.Mode(dockertest.WorkspaceMode(t))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wsm.Close() })
	p.Workspaces = wsm
	p.Owner = &workspace.Owner{UID: 10001, GID: 10001}
	p.NewRunID = func(*event.Event, string) string { return runID }
	return p
}

// fakeSandbox plays an agent without Docker: it records the task, writes fix.txt into the
// workspace and one finding.
type fakeSandbox struct {
	mu    sync.Mutex
	tasks []*runner.Task
}

func (s *fakeSandbox) Run(ctx context.Context, t *runner.Task, logs io.Writer) (*runner.Exit, error) {
	// The agent's edit must land on the filled workspace, not race the clone.
	if err := t.WaitWorkspace(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.tasks = append(s.tasks, t)
	s.mu.Unlock()
	now := time.Now()
	if err := os.WriteFile(filepath.Join(t.WorkspaceDir, "fix.txt"), []byte("fixed by "+t.Instance.ID+"\n"), 0o644); err != nil {
		return nil, err
	}
	findings := `[{"path":"README.md","line":1,"level":"warning","message":"typo"}]`
	if err := os.WriteFile(filepath.Join(t.OutputDir, "findings.json"), []byte(findings), 0o644); err != nil {
		return nil, err
	}
	_, _ = logs.Write([]byte("agent ran\n"))
	return &runner.Exit{Outcome: result.Success, Started: now, Finished: time.Now()}, nil
}

func (s *fakeSandbox) all() []*runner.Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*runner.Task(nil), s.tasks...)
}
