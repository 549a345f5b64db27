package sandbox_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/volume"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/internal/syncbuf"
	"github.com/agentrunner/agentrunner/sandbox"
)

// overlaySpec is newSpec on an overlay workspace whose lower layer holds files (path →
// content), owned like a shared checkout by the agent's user.
func overlaySpec(t *testing.T, runID string, files map[string]string, argv ...string) *sandbox.Spec {
	t.Helper()
	spec := newSpec(t, runID, argv...)
	root := t.TempDir()
	l := &sandbox.Layers{Lower: filepath.Join(root, "lower"), Upper: filepath.Join(root, "upper"), Work: filepath.Join(root, "work")}
	for _, d := range []string{l.Lower, l.Upper, l.Work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fillLower(t, l.Lower, files)
	spec.WorkspaceDir, spec.WorkspaceLayers = "", l
	return spec
}

func fillLower(t *testing.T, lower string, files map[string]string) {
	t.Helper()
	uid, gid := sandbox.DefaultOwner()
	for p, c := range files {
		full := filepath.Join(lower, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Copy-up checks the lower file's own permissions: the agent's user must own it.
	err := filepath.WalkDir(lower, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
}

// volumesOf lists the Docker volumes labelled with runID.
func volumesOf(t *testing.T, runID string) []string {
	t.Helper()
	vs, err := dockertest.Client(t).VolumeList(context.Background(), volume.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", sandbox.LabelRun+"="+runID)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vs.Volumes {
		names = append(names, v.Name)
	}
	return names
}

// whiteout reports whether path is an overlay whiteout (a 0:0 character device).
func whiteout(path string) bool {
	var st syscall.Stat_t
	return syscall.Lstat(path, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFCHR && st.Rdev == 0
}

// An agent on an overlay workspace sees the lower layer at /workspace; everything it changes
// lands in its upper layer (a deletion as a whiteout) and the shared lower layer stays as it
// was. The volume goes with the container.
func TestOverlayWorkspaceWritesOnlyTheUpperLayer(t *testing.T) {
	t.Parallel()
	runID := dockertest.RunID(t)
	spec := overlaySpec(t, runID, map[string]string{"a.txt": "a\n", "b.txt": "b\n", "dir/c.txt": "c\n"},
		"append", "a.txt=more", "write", "dir/new.txt=new", "delete", "b.txt", "output", "seen=yes")
	res, logs, err := run(t.Context(), t, newDocker(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != sandbox.Success {
		t.Fatalf("outcome %s (exit %d), want success; logs:\n%s", res.Outcome, res.ExitCode, logs)
	}
	l := spec.WorkspaceLayers
	for p, want := range map[string]string{"a.txt": "a\n", "b.txt": "b\n", "dir/c.txt": "c\n"} {
		if got := readFile(t, filepath.Join(l.Lower, p)); got != want {
			t.Errorf("lower %s = %q, want it untouched (%q)", p, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(l.Lower, "dir/new.txt")); err == nil {
		t.Error("a new file reached the lower layer")
	}
	if got := readFile(t, filepath.Join(l.Upper, "a.txt")); !strings.HasPrefix(got, "a\nmore") {
		t.Errorf("upper a.txt = %q, want the lower's content with the append", got)
	}
	if got := readFile(t, filepath.Join(l.Upper, "dir/new.txt")); !strings.HasPrefix(got, "new") {
		t.Errorf("upper dir/new.txt = %q", got)
	}
	if !whiteout(filepath.Join(l.Upper, "b.txt")) {
		t.Error("the deleted b.txt has no whiteout in the upper layer")
	}
	if _, err := os.Stat(filepath.Join(l.Upper, "dir/c.txt")); err == nil {
		t.Error("an untouched file was copied up")
	}
	if v := volumesOf(t, runID); len(v) != 0 {
		t.Errorf("volumes %v remain after the run", v)
	}
}

// The volume is made while the shared checkout is still being written; the agent starts only
// once it is ready, and sees it whole.
func TestOverlayLowerFilledWhileTheContainerIsCreated(t *testing.T) {
	t.Parallel()
	runID := dockertest.RunID(t)
	spec := overlaySpec(t, runID, nil, "append", "late.txt=+agent")
	lower := spec.WorkspaceLayers.Lower
	if err := os.Remove(lower); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	spec.WorkspaceReady = func(context.Context) error {
		once.Do(func() {
			if err := os.Mkdir(lower, 0o755); err != nil {
				t.Error(err)
			}
			fillLower(t, lower, map[string]string{"late.txt": "filled"})
		})
		return nil
	}
	sb := newDocker(t)
	h, err := sb.Prepare(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Destroy(context.Background(), h) })
	if v := volumesOf(t, runID); len(v) != 1 || v[0] != h.Name {
		t.Errorf("volumes after Prepare = %v, want one named like the container (%s)", v, h.Name)
	}
	var logs syncbuf.Buffer
	res, err := sb.Run(t.Context(), h, &logs)
	if err != nil || res.Outcome != sandbox.Success {
		t.Fatalf("Run = %+v, %v; logs:\n%s", res, err, logs.String())
	}
	if got := readFile(t, filepath.Join(spec.WorkspaceLayers.Upper, "late.txt")); !strings.HasPrefix(got, "filled+agent") {
		t.Errorf("upper late.txt = %q, want the lower's content as filled before the start, appended", got)
	}
	if v := volumesOf(t, runID); len(v) != 0 {
		t.Errorf("volumes %v remain after the run", v)
	}
}

// Every way a job ends before or without its agent removes its volume: a workspace that fails
// to fill, a cancelled run, a Destroy without Run.
func TestOverlayVolumeIsRemovedOnEveryPath(t *testing.T) {
	t.Parallel()
	sb := newDocker(t)
	cases := []struct {
		name string
		run  func(t *testing.T, h *sandbox.Handle, spec *sandbox.Spec)
		spec func(spec *sandbox.Spec)
	}{
		{name: "a workspace that fails to fill", spec: func(spec *sandbox.Spec) {
			spec.WorkspaceReady = func(context.Context) error { return errors.New("clone failed") }
		}, run: func(t *testing.T, h *sandbox.Handle, _ *sandbox.Spec) {
			if _, err := sb.Run(t.Context(), h, nil); err == nil {
				t.Error("Run succeeded on a workspace that failed to fill")
			}
		}},
		{name: "a cancelled run", run: func(t *testing.T, h *sandbox.Handle, _ *sandbox.Spec) {
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(2*time.Second, cancel)
			res, err := sb.Run(ctx, h, nil)
			if err != nil || res.Outcome != sandbox.Cancelled {
				t.Errorf("Run = %+v, %v; want cancelled", res, err)
			}
		}},
		{name: "Destroy without Run", run: func(t *testing.T, h *sandbox.Handle, _ *sandbox.Spec) {
			if err := sb.Destroy(t.Context(), h); err != nil {
				t.Error(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runID := dockertest.RunID(t)
			spec := overlaySpec(t, runID, map[string]string{"a": "a"}, "hold")
			if c.spec != nil {
				c.spec(spec)
			}
			h, err := sb.Prepare(t.Context(), spec)
			if err != nil {
				t.Fatal(err)
			}
			c.run(t, h, spec)
			if v := volumesOf(t, runID); len(v) != 0 {
				t.Errorf("volumes %v remain", v)
			}
			if err := sb.Destroy(t.Context(), h); err != nil {
				t.Errorf("a second Destroy: %v", err)
			}
		})
	}
}

// The reaper removes a crash's overlay volumes with its containers, by the same rule.
func TestReapRemovesOverlayVolumes(t *testing.T) {
	t.Parallel()
	runID, other := dockertest.RunID(t), dockertest.RunID(t)
	sb := newDocker(t)
	var handles []*sandbox.Handle
	for _, id := range []string{runID, other} {
		h, err := sb.Prepare(t.Context(), overlaySpec(t, id, map[string]string{"a": "a"}, "hold"))
		if err != nil {
			t.Fatal(err)
		}
		handles = append(handles, h)
	}
	removed, err := sb.Reap(t.Context(), func(l sandbox.Leftover) bool { return l.RunID == runID })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"container " + handles[0].Name, "volume " + handles[0].Name}
	if strings.Join(removed, ";") != strings.Join(want, ";") {
		t.Errorf("reap removed %q, want %q", removed, want)
	}
	if v := volumesOf(t, other); len(v) != 1 {
		t.Errorf("the other run's volumes = %v, want its one volume kept", v)
	}
	if err := sb.Destroy(t.Context(), handles[1]); err != nil {
		t.Fatal(err)
	}
}

// Specs the sandbox refuses before touching Docker.
func TestOverlaySpecIsChecked(t *testing.T) {
	t.Parallel()
	runID := "t-overlay-spec"
	for name, edit := range map[string]func(s *sandbox.Spec){
		"both a directory and layers": func(s *sandbox.Spec) { s.WorkspaceDir = t.TempDir() },
		"a relative lower":            func(s *sandbox.Spec) { s.WorkspaceLayers.Lower = "lower" },
		"a comma in a path":           func(s *sandbox.Spec) { s.WorkspaceLayers.Upper = s.WorkspaceLayers.Upper + ",lowerdir=/" },
		"work inside upper":           func(s *sandbox.Spec) { s.WorkspaceLayers.Work = filepath.Join(s.WorkspaceLayers.Upper, "w") },
		"a missing upper":             func(s *sandbox.Spec) { s.WorkspaceLayers.Upper = filepath.Join(t.TempDir(), "nope") },
	} {
		spec := overlaySpec(t, runID, nil, "exit", "0")
		edit(spec)
		_, err := newDocker(t).Prepare(t.Context(), spec)
		if se := (*sandbox.SpecError)(nil); !errors.As(err, &se) {
			t.Errorf("%s: Prepare = %v, want a SpecError", name, err)
		}
	}
}

// This engine mounts overlay volumes: the probe passes, leaves nothing behind, and answers
// from its memory the second time. Without an executable to run in the container, it says why
// it cannot tell.
func TestProbeOverlay(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	sb := sandbox.NewDocker(cli, sandbox.Options{InitExecutable: dockertest.BuildRunner(t)})
	dir := t.TempDir()
	// A crashed probe's layers, long ago, are removed; a recent one may be another's, live.
	stale, recent := filepath.Join(dir, ".overlay-probe-1"), filepath.Join(dir, ".overlay-probe-2")
	for _, p := range []string{stale, recent} {
		if err := os.MkdirAll(filepath.Join(p, "upper"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(stale, time.Time{}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := sb.ProbeOverlay(t.Context(), dir); err != nil {
		t.Fatalf("ProbeOverlay on this engine: %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 || left[0].Name() != filepath.Base(recent) {
		t.Errorf("%s holds %v, want only the recent probe's layers", dir, left)
	}
	start := time.Now()
	if err := sb.ProbeOverlay(t.Context(), dir); err != nil || time.Since(start) > 100*time.Millisecond {
		t.Errorf("second probe = %v after %s, want the first answer at once", err, time.Since(start))
	}
	err := sandbox.NewDocker(cli, sandbox.Options{}).ProbeOverlay(t.Context(), t.TempDir())
	if !errors.Is(err, sandbox.ErrOverlayUnsupported) || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Errorf("probe without an executable = %v, want ErrOverlayUnsupported saying how to build one", err)
	}
}

// The disk limit counts what the agent writes into its upper layer, never the shared lower
// layer, however large: an agent under its limit on a large checkout runs, one over it stops.
func TestOverlayDiskLimitCountsOnlyTheUpperLayer(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 30<<20)
	for _, c := range []struct {
		name string
		argv []string
		want sandbox.Outcome
	}{
		{"a small write over a large shared checkout", []string{"fill", "small.bin=1m", "sleep", "3s"}, sandbox.Success},
		{"a write past the limit", []string{"fill", "big.bin=100m", "hold"}, sandbox.DiskLimit},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			spec := overlaySpec(t, dockertest.RunID(t), map[string]string{"shared.bin": big}, c.argv...)
			spec.Resources.Disk = 20 << 20
			res, logs, err := run(t.Context(), t, newDocker(t), spec)
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != c.want {
				t.Errorf("outcome %s, want %s; logs:\n%s", res.Outcome, c.want, logs)
			}
		})
	}
}

// An overlay probe killed halfway leaves its empty image, labelled like its container: the
// reaper removes it by the same rule, and no image without the run's label.
func TestReapRemovesTheProbesImage(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	runID := dockertest.RunID(t)
	tag := "agentrunner/overlay-probe:" + runID
	if err := dockertest.BuildImage(t.Context(), cli, tag, map[string]string{sandbox.LabelRun: runID},
		map[string][]byte{"Dockerfile": []byte("FROM " + dockertest.TestAgentImage(t) + "\n")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true}) })
	removed, err := newDocker(t).Reap(t.Context(), func(l sandbox.Leftover) bool { return l.RunID == runID })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(removed, ";") != "image "+tag {
		t.Errorf("reap removed %q, want the image %s", removed, tag)
	}
	if _, err := cli.ImageInspect(t.Context(), tag); err == nil {
		t.Error("the image is still there")
	}
	if _, err := cli.ImageInspect(t.Context(), dockertest.TestAgentImage(t)); err != nil {
		t.Errorf("the reap took the base image along: %v", err)
	}
}
