package sandbox

import (
	"context"
	"errors"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
)

// Leftover is a Docker object Reap found, with the labels that say whose it is.
type Leftover struct {
	Kind  string // "container", "volume" (an overlay workspace's), "image" (the overlay probe's) or "network"
	Name  string
	RunID string // LabelRun
	Owner string // LabelOwner; "" on objects made before owners were labelled
	Store string // LabelStore; "" unless a daemon made it
}

func leftover(kind, name string, labels map[string]string) Leftover {
	return Leftover{Kind: kind, Name: name, RunID: labels[LabelRun], Owner: labels[LabelOwner], Store: labels[LabelStore]}
}

// ReapDeadExecs is the policy of a `runner exec` starting: it removes only what a `runner exec`
// on this host left when it died (ExecGone), never what a daemon or a live exec holds.
func ReapDeadExecs(l Leftover) bool { return ExecGone(l.Owner) }

// Reap removes the containers, then the volumes, the images, the networks, labelled
// agentrunner.run for which remove returns true: the leftovers of a crash, swept at start-up.
// It returns what it removed ("container <name>", "volume <name>", "image <tag>",
// "network <name>") and every failure joined; one failure does not stop
// the sweep.
func (d *Docker) Reap(ctx context.Context, remove func(Leftover) bool) ([]string, error) {
	f := filters.NewArgs(filters.Arg("label", LabelRun))
	var removed []string
	var errs []error
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, &InfraError{Op: "list containers", Object: "to reap", Err: err}
	}
	for _, c := range cs {
		name := strings.TrimPrefix(strings.Join(c.Names, ","), "/")
		l := leftover("container", name, c.Labels)
		if !remove(l) {
			continue
		}
		err := d.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, &InfraError{Op: "remove container", Object: name, Err: err})
			continue
		}
		d.log.InfoContext(ctx, "reaped container", "run_id", l.RunID, "job", c.Labels[LabelJob], "container", name, "owner", l.Owner)
		removed = append(removed, "container "+name)
	}
	// Volumes after containers: the engine refuses to remove a volume a container still uses.
	vs, err := d.cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		errs = append(errs, &InfraError{Op: "list volumes", Object: "to reap", Err: err})
	}
	for _, v := range vs.Volumes {
		l := leftover("volume", v.Name, v.Labels)
		if !remove(l) {
			continue
		}
		if err := d.removeVolume(ctx, v.Name); err != nil {
			errs = append(errs, &InfraError{Op: "remove volume", Object: v.Name, Err: err})
			continue
		}
		d.log.InfoContext(ctx, "reaped volume", "run_id", l.RunID, "job", v.Labels[LabelJob], "volume", v.Name, "owner", l.Owner)
		removed = append(removed, "volume "+v.Name)
	}
	// Images: only the overlay probe's, labelled like its container (agent images carry no
	// run label).
	is, err := d.cli.ImageList(ctx, image.ListOptions{Filters: f})
	if err != nil {
		errs = append(errs, &InfraError{Op: "list images", Object: "to reap", Err: err})
	}
	for _, i := range is {
		name := i.ID
		if len(i.RepoTags) > 0 {
			name = i.RepoTags[0]
		}
		l := leftover("image", name, i.Labels)
		if !remove(l) {
			continue
		}
		_, err := d.cli.ImageRemove(ctx, i.ID, image.RemoveOptions{Force: true, PruneChildren: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, &InfraError{Op: "remove image", Object: name, Err: err})
			continue
		}
		d.log.InfoContext(ctx, "reaped image", "run_id", l.RunID, "image", name, "owner", l.Owner)
		removed = append(removed, "image "+name)
	}
	ns, err := d.cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		errs = append(errs, &InfraError{Op: "list networks", Object: "to reap", Err: err})
		return removed, errors.Join(errs...)
	}
	for _, n := range ns {
		l := leftover("network", n.Name, n.Labels)
		if !remove(l) {
			continue
		}
		if err := d.cli.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, &InfraError{Op: "remove network", Object: n.Name, Err: err})
			continue
		}
		d.log.InfoContext(ctx, "reaped network", "run_id", l.RunID, "network", n.Name, "owner", l.Owner)
		removed = append(removed, "network "+n.Name)
	}
	return removed, errors.Join(errs...)
}
