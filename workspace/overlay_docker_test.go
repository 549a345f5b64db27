package workspace

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/google/go-cmp/cmp"

	"github.com/agentrunner/agentrunner/internal/dockertest"
)

// runAgent runs the test agent with argv steps on the workspace w mounted at /workspace as
// owner, as the sandbox mounts it, and returns the agent's output; a failing agent fails the
// test. The container and the volume are gone when it returns.
func runAgent(t *testing.T, runID string, w *Workspace, owner *Owner, steps ...string) string {
	t.Helper()
	a := startAgent(t, runID, w, owner, steps...)
	defer a.stop()
	return a.wait(t)
}

// agentRun is a test agent container on a workspace.
type agentRun struct {
	ctx        context.Context
	cli        *client.Client
	id         string
	steps      []string
	mountpoint string // overlay mode: where the engine mounted the merged view on the host
	stop       func() // removes the container and the volume
}

// startAgent starts the test agent on w: a bind mount of Path in checkout mode, a `local`
// overlay volume on Layers in overlay mode.
func startAgent(t *testing.T, runID string, w *Workspace, owner *Owner, steps ...string) *agentRun {
	t.Helper()
	cli := dockertest.Client(t)
	img := dockertest.TestAgentImage(t)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 2*time.Minute)
	a := &agentRun{ctx: ctx, cli: cli, steps: steps}
	var undo []func()
	a.stop = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		undo = nil
		cancel()
	}
	t.Cleanup(a.stop)
	if err := w.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{dockertest.LabelRun: runID}
	m := mount.Mount{Type: mount.TypeBind, Source: w.Path(), Target: "/workspace"}
	if l, ok := w.Layers(); ok {
		vol, err := cli.VolumeCreate(ctx, volume.CreateOptions{
			Name:   runID + "-" + filepath.Base(filepath.Dir(w.Path())),
			Driver: "local",
			DriverOpts: map[string]string{
				"type":   "overlay",
				"device": "overlay",
				"o":      fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,userxattr", l.Lower, l.Upper, l.Work),
			},
			Labels: labels,
		})
		if err != nil {
			t.Fatalf("create overlay volume: %v", err)
		}
		undo = append(undo, func() {
			if err := cli.VolumeRemove(context.WithoutCancel(ctx), vol.Name, true); err != nil {
				t.Errorf("remove volume %s: %v", vol.Name, err)
			}
		})
		a.mountpoint = vol.Mountpoint
		m = mount.Mount{Type: mount.TypeVolume, Source: vol.Name, Target: "/workspace"}
	}
	user := ""
	if owner != nil {
		user = fmt.Sprintf("%d:%d", owner.UID, owner.GID)
	}
	c, err := cli.ContainerCreate(ctx,
		&container.Config{Image: img, Cmd: steps, WorkingDir: "/workspace", User: user, Env: w.ContainerEnv(), Labels: labels},
		&container.HostConfig{Mounts: []mount.Mount{m}}, nil, nil, "")
	if err != nil {
		t.Fatalf("create agent container: %v", err)
	}
	a.id = c.ID
	undo = append(undo, func() {
		if err := cli.ContainerRemove(context.WithoutCancel(ctx), c.ID, container.RemoveOptions{Force: true}); err != nil {
			t.Errorf("remove agent container: %v", err)
		}
	})
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start agent container: %v", err)
	}
	return a
}

// wait waits for the agent to exit and returns its output, failing the test unless it exits 0.
func (a *agentRun) wait(t *testing.T) string {
	t.Helper()
	statusCh, errCh := a.cli.ContainerWait(a.ctx, a.id, container.WaitConditionNotRunning)
	var code int64
	select {
	case st := <-statusCh:
		code = st.StatusCode
	case err := <-errCh:
		t.Fatalf("wait for agent: %v", err)
	}
	logs, err := a.cli.ContainerLogs(a.ctx, a.id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("agent logs: %v", err)
	}
	defer logs.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, logs); err != nil && err != io.EOF {
		t.Fatalf("agent logs: %v", err)
	}
	if code != 0 {
		t.Fatalf("agent %v exited %d:\n%s", a.steps, code, out.String())
	}
	return out.String()
}

// newModeWorkspace creates the workspace of job "job" in a Manager of its own in mode md; both
// go at the end of the test.
func newModeWorkspace(t *testing.T, md Mode, src Source, runID string, owner *Owner) *Workspace {
	t.Helper()
	m, err := NewManager(filepath.Join(t.TempDir(), "data"), WithMode(md))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	w, err := m.Create(t.Context(), src, runID, "job", owner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Remove(context.WithoutCancel(t.Context())) })
	return w
}

// overlayBase is a repository with every kind of entry the edits below touch.
var overlayBase = map[string]string{
	"README.md":      "hello\n",
	"src/main.go":    "package main\n\nfunc main() {}\n",
	"src/util.go":    baseFiles["src/util.go"],
	"docs/guide.txt": "guide\n",
	"docs/old/a.txt": "a\n",
	"docs/old/b.txt": "b\n",
	"tools/run.sh":   "#!/bin/sh\necho run\n",
	"logo.bin":       binaryContent,
	".gitignore":     "*.log\nbuild/\n",
	"gone/z.txt":     "z\n",
	"gone/deep/y.md": "y\n",
	"keep/.keep":     "",
}

// overlayEdits are the agent's edits: everything Changes must see, through the overlay as in a
// plain checkout.
var overlayEdits = []string{
	"write", "README.md=changed\n",
	"append", "src/main.go=// more\n",
	"write", "new/dir/file.txt=hello\n",
	"delete", "docs/guide.txt",
	"rename", "src/util.go=src/helper.go",
	"chmod", "tools/run.sh=644",
	"chmod", "src/main.go=755",
	"symlink", "newlink=src/main.go",
	"symlink", "link=docs",
	"binary", "bin2.dat",
	"binary", "logo.bin",
	// A deleted and recreated directory: opaque in the upper layer.
	"delete", "docs/old",
	"write", "docs/old/c.txt=recreated\n",
	"write", "debug.log=ignored\n",

	"write", "build/out.o=ignored too\n",
	"write", "tracked.log=tracked though ignored, changed\n",
	"delete", "gone",
	"commit", "agent commit",
	"write", "after.txt=after the commit\n",
	"mkfifo", "pipe", // git adds no FIFO (after the commit: go-git would wait on it)
	// A file replaced by a directory.
	"delete", "keep/.keep",
	"write", "keep/.keep/inner=now a directory\n",
}

// The same edits give byte-identical patches in a full checkout and through an overlay.
func TestOverlayChangesMatchCheckout(t *testing.T) {
	runID := dockertest.RunID(t)
	src, _ := newRepo(t, overlayBase)
	writeFiles(t, src, map[string]string{"tracked.log": "tracked though ignored\n"})
	if err := os.Symlink("README.md", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "tools/run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	testGit(t, src, "add", "-f", "tracked.log", "link", "tools/run.sh")
	testGit(t, src, "commit", "-q", "-m", "more")
	head := testGit(t, src, "rev-parse", "HEAD")
	owner := &Owner{UID: 65532, GID: 65532}

	patches := map[Mode][]byte{}
	files := map[Mode][]FileChange{}
	for _, mode := range []Mode{ModeCheckout, ModeOverlay} {
		w := newModeWorkspace(t, mode, Source{RepoDir: src, SHA: head}, runID, owner)
		runAgent(t, runID, w, owner, overlayEdits...)
		if mode == ModeOverlay {
			assertOverlayMarks(t, w.Path())
		}
		c, err := w.Changes(t.Context(), ChangesOptions{})
		if err != nil {
			t.Fatalf("%s mode: %v", mode, err)
		}
		patches[mode], files[mode] = patchOf(t, c), c.Files
	}
	if len(patches[ModeCheckout]) == 0 {
		t.Fatal("checkout mode found no changes")
	}
	if diff := cmp.Diff(string(patches[ModeCheckout]), string(patches[ModeOverlay])); diff != "" {
		t.Errorf("overlay patch differs from checkout patch (-checkout +overlay):\n%s", diff)
	}
	if diff := cmp.Diff(files[ModeCheckout], files[ModeOverlay]); diff != "" {
		t.Errorf("overlay files differ (-checkout +overlay):\n%s", diff)
	}
	// What the patch must hold, so that both modes agreeing is not agreement on nothing.
	for _, want := range []string{"docs/old/c.txt", "tracked.log", "bin2.dat", "new file mode 120000", "old mode 100755", "rename to src/helper.go", "deleted file mode 100644\nindex ", "keep/.keep/inner", "after.txt"} {
		if !bytes.Contains(patches[ModeOverlay], []byte(want)) {
			t.Errorf("overlay patch lacks %q", want)
		}
	}
	for _, unwanted := range []string{"debug.log", "build/out.o"} {
		if bytes.Contains(patches[ModeOverlay], []byte(unwanted)) {
			t.Errorf("overlay patch holds ignored %q", unwanted)
		}
	}
}

// assertOverlayMarks checks that the kernel recorded the edits the way Changes must read them:
// an opaque directory for the recreated docs/old, a whiteout for the deleted gone, and
// nothing of the untouched tree copied up.
func assertOverlayMarks(t *testing.T, upper string) {
	t.Helper()
	if opaque, err := isOpaque(filepath.Join(upper, "docs/old")); err != nil || !opaque {
		t.Errorf("docs/old is not an opaque directory in the upper layer (%v, %v)", opaque, err)
	}
	info, err := os.Lstat(filepath.Join(upper, "gone"))
	if err != nil || !isWhiteout(info) {
		t.Errorf("gone is not a whiteout in the upper layer (%v)", err)
	}
	if _, err := os.Lstat(filepath.Join(upper, "docs/guide.txt")); err != nil {
		t.Errorf("no whiteout for docs/guide.txt: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(upper, ".gitignore")); err == nil {
		t.Errorf("the upper layer holds the untouched .gitignore")
	}
}

// git works in the merged view as in a checkout: the job's branch at the base commit, status,
// diff, add and commit; a status on the untouched tree leaves the shared index alone.
func TestOverlayGitInTheMergedView(t *testing.T) {
	runID := dockertest.RunID(t)
	src, head := newRepo(t, overlayBase)
	owner := &Owner{UID: 65532, GID: 65532}
	branches := map[Mode]string{}
	for _, mode := range []Mode{ModeCheckout, ModeOverlay} {
		w := newModeWorkspace(t, mode, Source{RepoDir: src, SHA: head}, runID, owner)
		if mode == ModeCheckout {
			branches[mode] = testGit(t, w.Path(), "branch", "-a", "--format=%(refname) %(objectname) %(upstream)")
			continue
		}
		a := startAgent(t, runID, w, owner, "write", "agent.txt=by the agent\n", "hold")
		view := a.mountpoint
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := os.Lstat(filepath.Join(view, "agent.txt")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the agent's file never appeared in the merged view at %s", view)
			}
			time.Sleep(20 * time.Millisecond)
		}
		branches[mode] = testGit(t, view, "branch", "-a", "--format=%(refname) %(objectname) %(upstream)")
		if got := testGit(t, view, "symbolic-ref", "HEAD"); got != "refs/heads/"+w.Branch() {
			t.Errorf("HEAD = %s, want the job's branch %s", got, w.Branch())
		}
		if got, want := testGit(t, view, "log", "--format=%H"), testGit(t, src, "log", "--format=%H", head); got != want {
			t.Errorf("git log = %q, want %q", got, want)
		}
		if got := testGit(t, view, "status", "--porcelain"); got != "?? agent.txt" {
			t.Errorf("git status = %q, want only the agent's new file", got)
		}
		if _, err := os.Lstat(filepath.Join(w.Path(), ".git", "index")); err == nil {
			t.Errorf("git status on an untouched tree copied the index up (its stat data did not hold)")
		}
		writeFiles(t, view, map[string]string{"README.md": "edited in the view\n"})
		if got := testGit(t, view, "diff", "--name-only"); got != "README.md" {
			t.Errorf("git diff --name-only = %q", got)
		}
		testGit(t, view, "add", "-A")
		testGit(t, view, "commit", "-q", "-m", "in the view")
		if got := testGit(t, view, "rev-parse", "HEAD~1"); got != head {
			t.Errorf("the commit's parent is %s, want the base %s", got, head)
		}
		if got := testGit(t, view, "status", "--porcelain"); got != "" {
			t.Errorf("git status after commit = %q", got)
		}
		if _, err := os.Lstat(filepath.Join(w.Path(), ".git", "index")); err != nil {
			t.Errorf("the index was not copied up by git add: %v", err)
		}
		a.stop()
		c, err := w.Changes(t.Context(), ChangesOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := []FileChange{{Path: "README.md", Status: Modified}, {Path: "agent.txt", Status: Added}}
		if diff := cmp.Diff(want, c.Files); diff != "" {
			t.Errorf("changes (-want +got):\n%s", diff)
		}
	}
	if branches[ModeCheckout] != branches[ModeOverlay] {
		t.Errorf("branches differ:\ncheckout:\n%s\noverlay:\n%s", branches[ModeCheckout], branches[ModeOverlay])
	}
}
