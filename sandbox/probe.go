package sandbox

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	dockerimage "github.com/docker/docker/api/types/image"
)

// Overlay workspaces need an engine that mounts overlay volumes of its local driver over the
// runner's directories: not rootless Docker, not Docker Desktop (whose engine sees another
// filesystem), not a filesystem overlay cannot stack on. ProbeOverlay finds out by doing it.
const (
	// ProbeCommand is the hidden verb of the runner's executable that checks, inside the probe's
	// container, that /workspace shows the lower layer and takes writes.
	ProbeCommand = "__probe-overlay"
	probeMarker  = ".agentrunner-probe"
	probeWritten = ".agentrunner-probe-written"
	probeTimeout = time.Minute
	// probeDirPrefix names the probe's layers under the directory it probes; one older than
	// staleProbe is a crashed probe's (a live one ends within probeTimeout and its cleanup).
	probeDirPrefix = ".overlay-probe-"
	staleProbe     = 10 * probeTimeout
)

// ErrOverlayUnsupported is what ProbeOverlay's error wraps when the engine cannot give a job an
// overlay workspace; its message says why.
var ErrOverlayUnsupported = errors.New("the Docker engine cannot mount overlay workspaces")

// ProbeOverlay checks, once per process and directory, that the engine can mount an overlay
// volume whose layers are under dir (where workspaces will be) into a hardened container:
// it creates a volume over a temporary lower layer holding a marker, runs the runner's own
// executable (Options.InitExecutable) in it, in an empty image of its own (no agent image
// needs to be present, so the daemon asks at start), to read the marker and write a file,
// checks that the write landed in the upper layer and left the lower one alone, and removes
// everything. The error wraps ErrOverlayUnsupported and says why, or is an *InfraError when
// the engine failed at something unrelated.
func (d *Docker) ProbeOverlay(ctx context.Context, dir string) error {
	d.probeMu.Lock()
	defer d.probeMu.Unlock()
	if err, ok := d.probed[dir]; ok {
		return err
	}
	err := d.probeOverlay(ctx, dir)
	if ctx.Err() != nil {
		return err // not an answer about the engine: ask again next time
	}
	if d.probed == nil {
		d.probed = map[string]error{}
	}
	d.probed[dir] = err
	return err
}

func (d *Docker) probeOverlay(ctx context.Context, dir string) (err error) {
	unsupported := func(format string, args ...any) error {
		return fmt.Errorf("%w over %s: %s", ErrOverlayUnsupported, dir, fmt.Sprintf(format, args...))
	}
	if d.opts.InitExecutable == "" {
		return unsupported("this runner's executable cannot run inside a container to check (build it with CGO_ENABLED=0)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("probe overlay workspaces: %w", err)
	}
	removeStaleProbes(dir)
	tmp, err := os.MkdirTemp(dir, probeDirPrefix)
	if err != nil {
		return fmt.Errorf("probe overlay workspaces: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = fmt.Errorf("remove the overlay probe's directory: %w", rerr)
		}
	}()
	l := &Layers{Lower: filepath.Join(tmp, "lower"), Upper: filepath.Join(tmp, "upper"), Work: filepath.Join(tmp, "work")}
	out := filepath.Join(tmp, "out")
	for _, p := range []string{l.Lower, l.Upper, l.Work, out} {
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("probe overlay workspaces: %w", err)
		}
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	if err := os.WriteFile(filepath.Join(l.Lower, probeMarker), []byte(token), 0o644); err != nil {
		return fmt.Errorf("probe overlay workspaces: %w", err)
	}
	image, err := d.probeImage(ctx, token)
	if err != nil {
		return err
	}
	defer func() {
		_, rerr := d.cli.ImageRemove(context.WithoutCancel(ctx), image, dockerimage.RemoveOptions{Force: true, PruneChildren: true})
		if rerr != nil && !cerrdefs.IsNotFound(rerr) && err == nil {
			err = &InfraError{Op: "remove image", Object: image, Err: rerr}
		}
	}()
	spec := &Spec{
		// Labelled like a job, so that the reaper removes what a crash in the middle left.
		RunID:           "overlay-probe-" + token,
		JobID:           "probe",
		Image:           image,
		Argv:            []string{InitPath, ProbeCommand, token},
		WorkspaceLayers: l,
		OutputDir:       out,
		Timeout:         probeTimeout,
	}
	h, err := d.Prepare(ctx, spec)
	if err != nil {
		return err
	}
	var logs bytes.Buffer
	res, err := d.Run(ctx, h, &logs)
	if derr := d.Destroy(ctx, h); derr != nil && err == nil {
		err = derr
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return err
	case err != nil:
		// The engine mounts the volume when the container starts: that is where it fails.
		return unsupported("%s", CleanDockerError(err))
	case res.Outcome != Success:
		return unsupported("the probe's container ended %s (exit %d): %s", res.Outcome, res.ExitCode, strings.TrimSpace(logs.String()))
	}
	got, err := os.ReadFile(filepath.Join(l.Upper, probeWritten))
	if err != nil || string(got) != token {
		return unsupported("a file written in the container is not in the upper layer %s (%v)", l.Upper, err)
	}
	if _, err := os.Stat(filepath.Join(l.Lower, probeWritten)); err == nil {
		return unsupported("a file written in the container reached the lower layer")
	}
	return nil
}

// ProbeMain is the probe's verb inside the container (`runner __probe-overlay TOKEN`): it
// checks that /workspace shows the lower layer's marker and takes a write, and returns the
// exit code.
func ProbeMain(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "agentrunner probe: usage: "+ProbeCommand+" TOKEN")
		return 2
	}
	got, err := os.ReadFile(filepath.Join(WorkspacePath, probeMarker))
	if err != nil || string(got) != args[0] {
		fmt.Fprintf(os.Stderr, "agentrunner probe: %s does not show the lower layer's marker (%q, %v)\n", WorkspacePath, got, err)
		return 1
	}
	if err := os.WriteFile(filepath.Join(WorkspacePath, probeWritten), []byte(args[0]), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "agentrunner probe: %s takes no writes: %v\n", WorkspacePath, err)
		return 1
	}
	return 0
}

// probeImage imports an empty image, labelled like the probe's other objects, for the probe's
// container: everything it runs is bind-mounted.
func (d *Docker) probeImage(ctx context.Context, token string) (string, error) {
	var empty bytes.Buffer
	if err := tar.NewWriter(&empty).Close(); err != nil {
		return "", err
	}
	ref := "agentrunner/overlay-probe:" + token
	// Labelled like the probe's container, so that Reap removes it after a crash mid-probe.
	labels := d.labels(&Spec{RunID: "overlay-probe-" + token, JobID: "probe"})
	changes := make([]string, 0, len(labels))
	for k, v := range labels {
		changes = append(changes, "LABEL "+strconv.Quote(k)+"="+strconv.Quote(v))
	}
	rc, err := d.cli.ImageImport(ctx, dockerimage.ImportSource{Source: &empty, SourceName: "-"}, ref,
		dockerimage.ImportOptions{Changes: changes})
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if err != nil {
		return "", &InfraError{Op: "import the overlay probe's empty image", Object: ref, Err: err}
	}
	return ref, nil
}

// removeStaleProbes removes what probes that crashed left in dir (their containers, volumes
// and images go with Reap). A failure is left for the next probe.
func removeStaleProbes(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, probeDirPrefix+"*"))
	for _, p := range old {
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() && time.Since(fi.ModTime()) > staleProbe {
			_ = os.RemoveAll(p)
		}
	}
}
