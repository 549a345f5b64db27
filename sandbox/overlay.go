package sandbox

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
)

// Layers is an overlay workspace: a read-only lower directory (a checkout shared by many
// jobs) under a job's own upper directory, which receives every change, with work as the
// kernel's scratch directory (on the same filesystem as upper). The Docker engine mounts it,
// through a volume of its `local` driver, so the runner needs no mount privileges of its own.
type Layers struct {
	Lower, Upper, Work string
	// FSMonitor: the lower layer's git configuration names the fsmonitor hook at FSMonitorPath,
	// which the sandbox then mounts with what it reads (fsmonitorMounts).
	FSMonitor bool
}

// overlayOptions are the local driver's options for l. userxattr keeps overlay's own
// attributes in the user.* namespace: the engine may run without CAP_SYS_ADMIN in the initial
// user namespace (fuse-overlayfs hosts, rootless), and the runner reads opaque directories
// without root.
func overlayOptions(l *Layers) map[string]string {
	return map[string]string{
		"type":   "overlay",
		"device": "overlay",
		"o":      "lowerdir=" + l.Lower + ",upperdir=" + l.Upper + ",workdir=" + l.Work + ",userxattr",
	}
}

// checkLayers refuses paths the mount options cannot carry: overlay splits lowerdir on ':'
// and the options on ','; the engine resolves nothing relative.
func checkLayers(l *Layers) error {
	for _, p := range []struct{ name, dir string }{{"Lower", l.Lower}, {"Upper", l.Upper}, {"Work", l.Work}} {
		switch {
		case !filepath.IsAbs(p.dir):
			return fmt.Errorf("%s %q is not an absolute host path", p.name, p.dir)
		case strings.ContainsAny(p.dir, ",:=\\\x00\n"):
			return fmt.Errorf("%s %q holds a character overlay mount options cannot carry (, : = \\ or a control character)", p.name, p.dir)
		}
	}
	if nested(l.Upper, l.Work) || nested(l.Work, l.Upper) {
		return fmt.Errorf("overlay layers: upper %q and work %q must be apart (neither inside the other)", l.Upper, l.Work)
	}
	return nil
}

// nested reports whether dir is parent or below it.
func nested(parent, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(parent), filepath.Clean(dir))
	return err == nil && (rel == "." || !strings.HasPrefix(rel, ".."))
}

// workspaceMount is the mount of /workspace: a bind mount of WorkspaceDir, or the job's
// overlay volume.
func workspaceMount(spec *Spec, volumeName string) mount.Mount {
	if spec.WorkspaceLayers == nil {
		return mount.Mount{Type: mount.TypeBind, Source: spec.WorkspaceDir, Target: WorkspacePath}
	}
	// NoCopy: an empty volume must not be filled from the image's /workspace.
	return mount.Mount{Type: mount.TypeVolume, Source: volumeName, Target: WorkspacePath,
		VolumeOptions: &mount.VolumeOptions{NoCopy: true}}
}

// createVolume creates the job's overlay volume, labelled like its container. The local
// driver only records the options: the engine mounts the volume when the first container
// using it starts, so the lower layer may still be being filled (WorkspaceReady).
func (d *Docker) createVolume(ctx context.Context, spec *Spec, name string, opts, labels map[string]string) error {
	// Like the container's create, not abandoned when ctx ends: removed by the caller instead.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opts.CleanupTimeout)
	defer cancel()
	_, err := d.cli.VolumeCreate(cctx, volume.CreateOptions{
		Name:       name,
		Driver:     "local",
		DriverOpts: opts,
		Labels:     labels,
	})
	if err != nil {
		return &InfraError{Op: "create overlay volume", Object: fmt.Sprintf("for job %q", spec.JobID), Err: err}
	}
	return nil
}

// removeVolume removes the job's volume once its container is gone (the engine unmounts it
// when the container stops); a volume already gone is fine.
func (d *Docker) removeVolume(ctx context.Context, name string) error {
	if err := d.cli.VolumeRemove(ctx, name, false); err != nil && !cerrdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// labels are what every object made for spec carries: the spec's own, the owner's, and the
// run and job.
func (d *Docker) labels(spec *Spec) map[string]string {
	labels := map[string]string{}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	for k, v := range d.opts.Owner {
		labels[k] = v
	}
	labels[LabelRun] = spec.RunID
	labels[LabelJob] = spec.JobID
	return labels
}

// fsmonitor tells whether spec's container gets git's fsmonitor hook (see FSMonitorPath).
func (d *Docker) fsmonitor(spec *Spec) bool {
	return spec.WorkspaceLayers != nil && spec.WorkspaceLayers.FSMonitor && d.opts.InitExecutable != ""
}

// lowerVolume names the volume that shows an overlay job's lower layer to its fsmonitor hook.
func lowerVolume(name string) string { return name + "-lower" }

// lowerOptions make a volume of the local driver that bind-mounts the lower layer. A volume,
// not a bind mount: the engine mounts it when the container starts, and the lower layer may
// not exist yet when the container is created (WorkspaceReady).
func lowerOptions(l *Layers) map[string]string {
	return map[string]string{"type": "none", "device": l.Lower, "o": "bind"}
}

// fsmonitorMounts show git's fsmonitor hook (the runner executable exe) what it reads: the
// job's upper layer and the lower layer, both read-only.
func fsmonitorMounts(l *Layers, exe, lowerVol string) []mount.Mount {
	return []mount.Mount{
		{Type: mount.TypeBind, Source: exe, Target: FSMonitorPath, ReadOnly: true},
		{Type: mount.TypeBind, Source: l.Upper, Target: FSMonitorUpper, ReadOnly: true},
		{Type: mount.TypeVolume, Source: lowerVol, Target: FSMonitorLower, ReadOnly: true,
			VolumeOptions: &mount.VolumeOptions{NoCopy: true}},
	}
}
