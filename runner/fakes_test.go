package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/workspace"
)

// fakeSandbox runs a task in-process by interpreting the test agent's argv steps
// (internal/testagent) on the task's host directories: /workspace and /agent/out in a path
// map to WorkspaceDir and OutputDir. It measures how many tasks run at once.
type fakeSandbox struct {
	// argv, when set, replaces a task's argv (per replica, for votes).
	argv func(in *plan.Instance) []string
	// exit, when set, adjusts a task's exit as the Docker sandbox's egress would.
	exit func(in *plan.Instance, e *Exit)

	running atomic.Int64
	peak    atomic.Int64
	calls   atomic.Int64
	mu      sync.Mutex
	order   []string // job ids in the order they started
}

func (f *fakeSandbox) Run(ctx context.Context, t *Task, logs io.Writer) (*Exit, error) {
	n := f.running.Add(1)
	defer f.running.Add(-1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	f.calls.Add(1)
	if err := t.WaitWorkspace(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.order = append(f.order, t.Instance.ID)
	f.mu.Unlock()
	argv := t.Instance.Argv
	if f.argv != nil {
		argv = f.argv(t.Instance)
	}
	exit := &Exit{Started: time.Now()}
	code, cancelled := interpret(ctx, t, argv, logs)
	exit.Finished = time.Now()
	switch {
	case cancelled:
		exit.Outcome = result.Cancelled
	case code == 0:
		exit.Outcome = result.Success
	default:
		exit.Outcome, exit.ExitCode = result.Failed, code
	}
	if f.exit != nil {
		f.exit(t.Instance, exit)
	}
	return exit, nil
}

func (f *fakeSandbox) started() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.order...)
}

// interpret runs the test agent's steps; it returns the exit code, or cancelled.
func interpret(ctx context.Context, t *Task, argv []string, logs io.Writer) (int, bool) {
	if len(argv) > 0 && strings.HasSuffix(argv[0], "testagent") {
		argv = argv[1:]
	}
	path := func(p string) string {
		switch {
		case strings.HasPrefix(p, "/agent/out/"):
			return filepath.Join(t.OutputDir, strings.TrimPrefix(p, "/agent/out/"))
		case strings.HasPrefix(p, "/workspace/"):
			return filepath.Join(t.WorkspaceDir, strings.TrimPrefix(p, "/workspace/"))
		}
		return filepath.Join(t.WorkspaceDir, p)
	}
	fail := func(err error) (int, bool) {
		fmt.Fprintln(logs, "testagent:", err)
		return 1, false
	}
	kv := func(s string) (string, string) {
		k, v, _ := strings.Cut(s, "=")
		return k, v
	}
	for len(argv) > 0 {
		verb, arg := argv[0], ""
		argv = argv[1:]
		switch verb {
		case "commit", "print", "eprint", "write", "append", "delete", "binary", "output", "output-json", "report", "finding", "sleep", "exit", "workflow", "workflow-retry":
			if len(argv) == 0 {
				return fail(fmt.Errorf("step %q needs an argument", verb))
			}
			arg, argv = argv[0], argv[1:]
		}
		var err error
		switch verb {
		case "write", "append":
			k, v := kv(arg)
			p := path(k)
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				break
			}
			mode := os.O_TRUNC
			if verb == "append" {
				mode = os.O_APPEND
			}
			var f *os.File
			if f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|mode, 0o644); err == nil {
				_, err = f.WriteString(v)
				f.Close()
			}
		case "delete":
			err = os.RemoveAll(path(arg))
		case "binary":
			data := make([]byte, 256)
			for i := range data {
				data[i] = byte(i)
			}
			err = os.WriteFile(path(arg), data, 0o644)
		case "commit":
			for _, args := range [][]string{{"add", "-A"}, {"-c", "user.name=testagent", "-c", "user.email=t@a.invalid", "commit", "-q", "--allow-empty", "-m", arg}} {
				cmd := exec.CommandContext(ctx, "git", args...)
				cmd.Dir = t.WorkspaceDir
				if out, cerr := cmd.CombinedOutput(); cerr != nil {
					err = fmt.Errorf("git %v: %v: %s", args, cerr, out)
					break
				}
			}
		case "output", "output-json":
			k, v := kv(arg)
			var raw json.RawMessage
			if verb == "output" {
				raw, _ = json.Marshal(v)
			} else {
				raw = json.RawMessage(v)
			}
			p := filepath.Join(t.OutputDir, "outputs.json")
			outs := map[string]json.RawMessage{}
			if b, rerr := os.ReadFile(p); rerr == nil {
				_ = json.Unmarshal(b, &outs)
			}
			outs[k] = raw
			b, _ := json.Marshal(outs)
			err = os.WriteFile(p, b, 0o644)
		case "report":
			var f *os.File
			if f, err = os.OpenFile(filepath.Join(t.OutputDir, "report.md"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err == nil {
				fmt.Fprintln(f, arg)
				f.Close()
			}
		case "finding":
			parts := strings.SplitN(arg, ":", 4)
			line, _ := strconv.Atoi(parts[1])
			p := filepath.Join(t.OutputDir, "findings.json")
			var all []map[string]any
			if b, rerr := os.ReadFile(p); rerr == nil {
				_ = json.Unmarshal(b, &all)
			}
			all = append(all, map[string]any{"path": parts[0], "line": line, "level": parts[2], "message": parts[3]})
			b, _ := json.Marshal(all)
			err = os.WriteFile(p, b, 0o644)
		case "sleep":
			d, perr := time.ParseDuration(arg)
			if perr != nil {
				return fail(perr)
			}
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return 137, true
			}
		case "hold":
			<-ctx.Done()
			return 137, true
		case "exit":
			code, _ := strconv.Atoi(arg)
			return code, false
		case "workflow", "workflow-retry":
			if _, serr := os.Stat(filepath.Join(t.OutputDir, "workflow-errors.txt")); verb == "workflow" || serr == nil {
				err = os.WriteFile(filepath.Join(t.OutputDir, "workflow.yaml"), []byte(arg), 0o644)
			}
		case "print":
			fmt.Fprintln(logs, arg)
		case "eprint":
			fmt.Fprintln(logs, arg)
		case "echo-prompt":
			fmt.Fprintln(logs, t.Instance.Prompt)
		case "env":
			for k, v := range t.Env {
				fmt.Fprintf(logs, "%s=%s\n", k, v)
			}
			for k, v := range t.Secrets {
				fmt.Fprintf(logs, "%s=%s\n", k, v)
			}
		default:
			return fail(fmt.Errorf("unknown step %q", verb))
		}
		if err != nil {
			return fail(fmt.Errorf("%s: %w", verb, err))
		}
		if ctx.Err() != nil {
			return 137, true
		}
	}
	return 0, false
}

// dirWorkspaces gives each job an empty directory and counts the live ones.
type dirWorkspaces struct {
	root string
	live atomic.Int64
	peak atomic.Int64
}

func (d *dirWorkspaces) Create(ctx context.Context, runID, jobID, _ string) (Workspace, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := filepath.Join(d.root, runID, JobDirName(jobID))
	if err := os.MkdirAll(p, 0o755); err != nil {
		return nil, err
	}
	n := d.live.Add(1)
	for {
		p := d.peak.Load()
		if n <= p || d.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return &dirWorkspace{d: d, path: p}, nil
}

// fakeDiskUsage is what every dirWorkspace says it takes on disk.
const fakeDiskUsage = 12345

type dirWorkspace struct {
	d       *dirWorkspaces
	path    string
	removed atomic.Bool
}

func (w *dirWorkspace) Path() string                { return w.path }
func (w *dirWorkspace) Layers() (Layers, bool)      { return Layers{}, false }
func (w *dirWorkspace) DiskUsage() (int64, error)   { return fakeDiskUsage, nil }
func (w *dirWorkspace) ContainerEnv() []string      { return nil }
func (w *dirWorkspace) Ready(context.Context) error { return nil }
func (w *dirWorkspace) Changes(context.Context, string, Limits) (*result.Changes, error) {
	return &result.Changes{}, nil
}

func (w *dirWorkspace) Remove(context.Context) error {
	if w.removed.CompareAndSwap(false, true) {
		w.d.live.Add(-1)
		return os.RemoveAll(w.path)
	}
	return nil
}

// recorder is a Reporter that keeps every update.
type recorder struct {
	mu      sync.Mutex
	updates []reporters.Update
}

func (r *recorder) Report(_ context.Context, u reporters.Update) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, u)
	return nil
}

func (r *recorder) kinds() []reporters.Kind {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]reporters.Kind, len(r.updates))
	for i, u := range r.updates {
		out[i] = u.Kind
	}
	return out
}

// routine builds the plan of one routine written in YAML (without its `on:`, `name:` and
// image defaults, which this adds).
func routine(t testing.TB, body string, sha string) *plan.Run {
	t.Helper()
	src := "name: r\non: {push: {}}\n"
	if !strings.Contains(body, "defaults:") {
		src += "defaults: {image: agentrunner/testagent:dev}\n"
	}
	src += body
	cfg, err := config.LoadFS(fstest.MapFS{"r.yaml": {Data: []byte(src)}}, ".")
	if err != nil {
		t.Fatalf("load routine: %v\n%s", err, src)
	}
	if errs := plan.Compile(cfg); len(errs) > 0 {
		t.Fatalf("compile routine: %v", errs)
	}
	if sha == "" {
		sha = strings.Repeat("a", 40)
	}
	ev := &event.Event{Kind: event.KindPush, Ref: "refs/heads/main", Branch: "main", SHA: sha,
		Repo: event.Repo{Owner: "o", Name: "r"}}
	p, err := plan.Build(cfg, ev, plan.Options{})
	if err != nil {
		t.Fatalf("plan routine: %v", err)
	}
	if len(p.Runs) != 1 {
		t.Fatalf("want 1 run, got %d (skipped: %v)", len(p.Runs), p.Skipped)
	}
	return p.Runs[0]
}

// harness is an engine on fakes.
type harness struct {
	sb  *fakeSandbox
	ws  *dirWorkspaces
	rec *recorder
	eng *Engine
	// runs numbers the runs, so each has its own id.
	runs atomic.Int64
	// wsRoot is the workspace manager's root, with real git workspaces.
	wsRoot string
}

func newHarness(t testing.TB) *harness {
	h := &harness{sb: &fakeSandbox{}, ws: &dirWorkspaces{root: t.TempDir()}, rec: &recorder{}}
	h.eng = &Engine{Sandbox: h.sb, Workspaces: h.ws, Reporter: h.rec, MaxAgents: 64}
	return h
}

func (h *harness) run(t testing.TB, ctx context.Context, p *plan.Run, secrets map[string]string) *result.Run {
	t.Helper()
	id := fmt.Sprintf("run%d", h.runs.Add(1))
	res, err := h.eng.Run(ctx, &reporters.RunInfo{ID: id, Repo: "o/r", Plan: p}, RunOptions{Dir: t.TempDir(), Secrets: secrets})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if n := h.ws.live.Load(); n != 0 && h.runs.Load() == 1 {
		t.Errorf("%d workspaces left after the run", n)
	}
	return res
}

func agentOf(t testing.TB, res *result.Run, name string) *result.Agent {
	t.Helper()
	for _, a := range res.Agents {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("no agent %q in the result (agents: %v)", name, agentNames(res))
	return nil
}

func agentNames(res *result.Run) []string {
	var out []string
	for _, a := range res.Agents {
		out = append(out, a.Name+"="+a.Result)
	}
	return out
}

func jobOf(t testing.TB, res *result.Run, id string) *result.Job {
	t.Helper()
	j := res.Job(id)
	if j == nil {
		var ids []string
		for _, j := range res.Jobs {
			ids = append(ids, j.ID)
		}
		t.Fatalf("no job %q in the result (jobs: %v)", id, ids)
	}
	return j
}

// gitRepo makes a repository with a few files committed and returns it and its HEAD.
func gitRepo(t testing.TB) (string, string) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"README.md":  "# demo\n",
		"keep.txt":   "line 1\nline 2\nline 3\n",
		"gone.txt":   "to be deleted\n",
		"shared.txt": "base\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t.invalid", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("add", "-A")
	git("commit", "-q", "-m", "base")
	return dir, git("rev-parse", "HEAD")
}

// gitHarness is an engine on the fake sandbox with real git workspaces and merger.
func gitHarness(t testing.TB) (*harness, string, string) {
	t.Helper()
	repo, sha := gitRepo(t)
	wsm, err := workspace.NewManager(filepath.Join(t.TempDir(), "ws"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wsm.Close() })
	h := newHarness(t)
	h.eng.Workspaces = &GitWorkspaces{Manager: wsm, Source: workspace.Source{RepoDir: repo, SHA: sha}}
	h.eng.Merger = &GitMerger{RepoDir: repo, BaseSHA: sha}
	h.wsRoot = wsm.Root()
	return h, repo, sha
}

// leftInRoot lists what remains in a workspace root besides the manager's own directories.
func leftInRoot(t testing.TB, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		if e.Name() == ".home" {
			continue
		}
		if strings.HasPrefix(e.Name(), ".") {
			sub, _ := os.ReadDir(filepath.Join(root, e.Name()))
			for _, s := range sub {
				left = append(left, e.Name()+"/"+s.Name())
			}
			continue
		}
		left = append(left, e.Name())
	}
	return left
}

// assertCancelled checks that the run concluded cancelled and that every job was cancelled.
func assertCancelled(t testing.TB, res *result.Run) {
	t.Helper()
	if res.Conclusion != result.ConclusionCancelled {
		t.Errorf("conclusion = %s, want cancelled", res.Conclusion)
	}
	for _, j := range res.Jobs {
		if j.Outcome != result.Cancelled {
			t.Errorf("job %s = %s (%s), want cancelled", j.ID, j.Outcome, j.Error)
		}
	}
}
