package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/agentrunner/agentrunner/proxy"
	"github.com/agentrunner/agentrunner/sandbox"
)

// dockerProxy is the proxy's container on Docker and its attach stream.
type dockerProxy struct {
	cli       client.APIClient
	e         *Egress
	container string // id
	hijack    types.HijackedResponse
	logsDone  chan struct{}
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// Start builds (or reuses) the proxy image, creates the run's networks and starts the proxy.
// On error everything it created is removed.
func Start(ctx context.Context, cli client.APIClient, spec RunSpec) (_ *Egress, err error) {
	e, fc, err := newEgress(&spec)
	if err != nil {
		return nil, err
	}
	dp := &dockerProxy{cli: cli, e: e, logsDone: make(chan struct{})}
	e.stop = dp.close
	img := spec.Image
	if img == "" {
		if img, err = Image(ctx, cli, spec.Executable); err != nil {
			return nil, err
		}
	}
	base := RunBase(spec.RunID)
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = e.Close(cctx)
		}
	}()
	labels := map[string]string{}
	for k, v := range spec.Owner {
		labels[k] = v
	}
	labels[LabelRun] = spec.RunID
	if e.internal, err = dp.createNetwork(ctx, base+"-int", true, labels); err != nil {
		return nil, err
	}
	if e.outside, err = dp.createNetwork(ctx, base+"-ext", false, labels); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	if spec.TestAllowOutside {
		n, err := cli.NetworkInspect(ctx, e.outside, network.InspectOptions{})
		if err != nil {
			return nil, fmt.Errorf("inspect network %s: %s", e.outside, sandbox.CleanDockerError(err))
		}
		if fc.TestOnly == nil {
			fc.TestOnly = &proxy.TestOnly{}
		}
		for _, c := range n.IPAM.Config {
			fc.TestOnly.AllowPrefixes = append(fc.TestOnly.AllowPrefixes, c.Subnet)
		}
	}
	if err := dp.startProxy(ctx, img, base+"-proxy", labels, fc, spec.StartTimeout); err != nil {
		return nil, err
	}
	e.log.Info("egress proxy started", "container", base+"-proxy", "internal_network", e.internal, "proxy_ip", e.proxyIP)
	return e, nil
}

func (dp *dockerProxy) createNetwork(ctx context.Context, name string, internal bool, labels map[string]string) (string, error) {
	cctx, cancel := uncancelled(ctx)
	defer cancel()
	opts := network.CreateOptions{Driver: "bridge", Internal: internal, Labels: labels}
	if internal {
		// An internal network only stops traffic the host would forward. The host itself stays
		// reachable through the bridge's address (the containers' default gateway), and with it
		// every service the host listens on, on any of its addresses, a DNS server that
		// forwards names outside among them. Without an address on the bridge the host is not
		// a hop at all: the agents reach each other and the proxy, and nothing else.
		opts.Options = map[string]string{"com.docker.network.bridge.inhibit_ipv4": "true"}
	}
	_, err := dp.cli.NetworkCreate(cctx, name, opts)
	if err != nil {
		return "", fmt.Errorf("create network %s for run %s: %s", name, dp.e.runID, sandbox.CleanDockerError(err))
	}
	return name, nil
}

// uncancelled is the context for creating a Docker object: the create is not abandoned when
// ctx ends, since the engine would finish it anyway and leave an object nobody knows of.
// Start checks ctx after each step and removes what exists.
func uncancelled(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

func (dp *dockerProxy) startProxy(ctx context.Context, img, name string, labels map[string]string, fc proxy.FileConfig, timeout time.Duration) error {
	e := dp.e
	lbl := map[string]string{LabelRole: RoleProxy}
	for k, v := range labels {
		lbl[k] = v
	}
	id, err := CreateService(ctx, dp.cli, name, Service{Image: img, User: "65534:65534", Labels: lbl, Network: e.internal, Memory: 512 << 20})
	if err != nil {
		return fmt.Errorf("create proxy container %s: %s", name, sandbox.CleanDockerError(err))
	}
	dp.container = id
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err := dp.cli.NetworkConnect(ctx, e.outside, dp.container, nil); err != nil {
		return fmt.Errorf("connect proxy container %s to network %s: %s", name, e.outside, sandbox.CleanDockerError(err))
	}
	var outR, errR io.Reader
	dp.hijack, outR, errR, err = Attach(ctx, dp.cli, dp.container)
	if err != nil {
		return fmt.Errorf("attach to proxy container %s: %s", name, sandbox.CleanDockerError(err))
	}
	go func() {
		defer close(dp.logsDone)
		RelayLogs(e.log, "proxy: ", errR)
	}()
	if err := dp.cli.ContainerStart(ctx, dp.container, container.StartOptions{}); err != nil {
		return fmt.Errorf("start proxy container %s: %s", name, sandbox.CleanDockerError(err))
	}
	if err := e.begin(ctx, dp.hijack.Conn, outR, fc, timeout); err != nil {
		return fmt.Errorf("proxy container %s: %w", name, err)
	}
	if e.proxyIP, err = ServiceIP(ctx, dp.cli, dp.container, e.internal); err != nil {
		return fmt.Errorf("proxy container %s: %w", name, err)
	}
	return nil
}

// Attach attaches to a created container running one of the runner's own programs (the
// proxy, a connector's bridge): its standard input is the returned connection's writer, its
// standard output and error the two readers, which end when the container's output does.
func Attach(ctx context.Context, cli client.APIClient, id string) (types.HijackedResponse, io.Reader, io.Reader, error) {
	hj, err := cli.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		return hj, nil, nil, err
	}
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(outW, errW, hj.Reader)
		outW.CloseWithError(err)
		errW.CloseWithError(err)
	}()
	return hj, outR, errR, nil
}

// RunBase is the name prefix of the Docker objects made for run runID.
func RunBase(runID string) string { return "agentrunner-" + unsafeName.ReplaceAllString(runID, "_") }

func (dp *dockerProxy) close(ctx context.Context) error {
	e := dp.e
	var errs []error
	if dp.hijack.Conn != nil {
		// End of stdin is the proxy's signal to stop.
		_ = dp.hijack.CloseWrite()
	}
	if dp.container != "" {
		err := dp.cli.ContainerRemove(ctx, dp.container, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove proxy container of run %s: %s", e.runID, sandbox.CleanDockerError(err)))
		}
	}
	if dp.hijack.Conn != nil {
		dp.hijack.Close()
		select {
		case <-dp.logsDone:
		case <-time.After(2 * time.Second):
		}
	}
	for _, n := range []string{e.internal, e.outside} {
		if n == "" {
			continue
		}
		if err := dp.cli.NetworkRemove(ctx, n); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s of run %s: %s", n, e.runID, sandbox.CleanDockerError(err)))
		}
	}
	return errors.Join(errs...)
}
