package egress

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// Service is one of the runner's own containers (the egress proxy, a connector's bridge),
// hardened like an agent's: no capabilities, no new privileges, a read-only root, a pids and
// memory limit. It reads its configuration from standard input, which Attach connects.
type Service struct {
	Image      string
	Entrypoint []string // empty: the image's
	User       string
	Env        []string
	Labels     map[string]string
	Network    string // the one network it is created on
	Memory     int64  // bytes
	Tmp        bool   // a small tmpfs at /tmp
}

// CreateService creates svc's container called name and returns its id. The create is not
// abandoned when ctx ends (see uncancelled); the caller removes what it made.
func CreateService(ctx context.Context, cli client.APIClient, name string, svc Service) (string, error) {
	pids := int64(256)
	cfg := &container.Config{
		Image:        svc.Image,
		Entrypoint:   svc.Entrypoint,
		Cmd:          []string{}, // the configuration comes on standard input
		Env:          svc.Env,
		User:         svc.User,
		Labels:       svc.Labels,
		OpenStdin:    true,
		StdinOnce:    true,
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
	}
	hc := &container.HostConfig{
		NetworkMode:    container.NetworkMode(svc.Network),
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		ReadonlyRootfs: true,
		Resources:      container.Resources{Memory: svc.Memory, PidsLimit: &pids},
	}
	if svc.Tmp {
		hc.Tmpfs = map[string]string{"/tmp": "rw,nosuid,nodev,size=256m"}
	}
	cctx, cancel := uncancelled(ctx)
	defer cancel()
	created, err := cli.ContainerCreate(cctx, cfg, hc, &network.NetworkingConfig{
		EndpointsConfig: map[string]*network.EndpointSettings{svc.Network: {}},
	}, nil, name)
	if err != nil {
		return "", err
	}
	return created.ID, nil
}

// ServiceIP is the address of container id on network.
func ServiceIP(ctx context.Context, cli client.APIClient, id, network string) (string, error) {
	info, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		return "", fmt.Errorf("inspect: %s", sandbox.CleanDockerError(err))
	}
	var ip string
	if info.NetworkSettings != nil {
		if ep := info.NetworkSettings.Networks[network]; ep != nil {
			ip = ep.IPAddress
		}
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		return "", fmt.Errorf("no address on network %s", network)
	}
	return ip, nil
}
