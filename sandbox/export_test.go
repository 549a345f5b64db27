package sandbox

import (
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
)

// ContainerConfig exposes the hardened container configuration to the benchmark, whose
// baseline drives the very same container through the Docker API directly.
func (d *Docker) ContainerConfig(spec *Spec) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	return d.containerConfig(spec)
}
