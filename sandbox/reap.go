package sandbox

import (
	"context"
	"errors"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
)

// Reap removes the containers, then the networks, labelled agentrunner.run whose run keep
// does not claim (a nil keep claims none): the leftovers of a crash, swept at start-up. It
// returns what it removed ("container <name>", "network <name>") and every failure joined; one
// failure does not stop the sweep.
func (d *Docker) Reap(ctx context.Context, keep func(runID string) bool) ([]string, error) {
	f := filters.NewArgs(filters.Arg("label", LabelRun))
	var removed []string
	var errs []error
	cs, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, &InfraError{Op: "list containers", Object: "to reap", Err: err}
	}
	for _, c := range cs {
		if keep != nil && keep(c.Labels[LabelRun]) {
			continue
		}
		name := strings.TrimPrefix(strings.Join(c.Names, ","), "/")
		err := d.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, &InfraError{Op: "remove container", Object: name, Err: err})
			continue
		}
		d.log.InfoContext(ctx, "reaped container", "run_id", c.Labels[LabelRun], "job", c.Labels[LabelJob], "container", name)
		removed = append(removed, "container "+name)
	}
	ns, err := d.cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		errs = append(errs, &InfraError{Op: "list networks", Object: "to reap", Err: err})
		return removed, errors.Join(errs...)
	}
	for _, n := range ns {
		if keep != nil && keep(n.Labels[LabelRun]) {
			continue
		}
		if err := d.cli.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, &InfraError{Op: "remove network", Object: n.Name, Err: err})
			continue
		}
		d.log.InfoContext(ctx, "reaped network", "run_id", n.Labels[LabelRun], "network", n.Name)
		removed = append(removed, "network "+n.Name)
	}
	return removed, errors.Join(errs...)
}
