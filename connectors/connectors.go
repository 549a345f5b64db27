// Package connectors runs a run's local MCP connectors on Docker: for each one a sidecar
// container from the connector's image with the runner executable added
// (egress.ConnectorImage), running `runner mcp-bridge` in front of the image's stdio MCP
// server, on the run's internal network where the run's agents reach it.
//
// A sidecar is hardened like an agent (no capabilities, no privilege escalation, read-only
// root filesystem, a non-root user, memory and process limits) and has no way out but the
// run's egress proxy, which it may use only when the connector has an allow list of its own.
// The connector's secrets reach the bridge over its standard input (an attach stream), so
// they are in neither the container's configuration nor an agent container; the bridge hands
// them to the MCP server process only. Agents reach the bridge at a URL with a per-run token.
//
// Every container carries the run label (sandbox.LabelRun), so the sandbox's reaper removes a
// crashed run's sidecars.
package connectors

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/agentrunner/agentrunner/egress"
	"github.com/agentrunner/agentrunner/mcpbridge"
	"github.com/agentrunner/agentrunner/sandbox"
)

// Labels and the bridge's port.
const (
	RoleConnector  = "connector" // the egress.LabelRole of a sidecar
	LabelConnector = "agentrunner.connector"
	Port           = 8080
)

// Local is one local connector of a run.
type Local struct {
	Name  string
	Image string
	// Command is the stdio MCP server's argv; empty runs the image's entrypoint and command.
	Command []string
	// Env is the server's environment: the connector's variables and secrets. It goes to the
	// bridge over standard input, never into the container's configuration.
	Env map[string]string
	// Tools, when set, are the only tools the bridge offers.
	Tools []string
	// ProxyEnv routes the server through the run's egress proxy (its own allow list); empty
	// leaves it with no way out of the run's internal network.
	ProxyEnv map[string]string
}

// Spec is a run's set of sidecars.
type Spec struct {
	RunID string
	// Network is the run's internal network (egress.(*Egress).Networks).
	Network string
	// Executable is the static runner executable for the bridge ("" = this process's own).
	Executable string
	// Owner labels the sidecars with who made them (sandbox.OwnerLabels).
	Owner  map[string]string
	Logger *slog.Logger
	// StartTimeout bounds one sidecar's start up to its first served request (default 60s).
	StartTimeout time.Duration
}

// Set is a run's running sidecars. Its methods are safe for concurrent use.
type Set struct {
	cli   client.APIClient
	log   *slog.Logger
	runID string

	mu       sync.Mutex
	sidecars map[string]*sidecar
}

type sidecar struct {
	name      string
	container string
	ip        string
	token     string
	tools     []string
	hijack    types.HijackedResponse
	logsDone  chan struct{}
}

// Start starts a sidecar per connector and waits until each serves. On error every sidecar
// it started is removed.
func Start(ctx context.Context, cli client.APIClient, spec Spec, locals []Local) (_ *Set, err error) {
	if spec.Logger == nil {
		spec.Logger = slog.New(slog.DiscardHandler)
	}
	if spec.StartTimeout <= 0 {
		spec.StartTimeout = 60 * time.Second
	}
	s := &Set{cli: cli, runID: spec.RunID, sidecars: map[string]*sidecar{},
		log: spec.Logger.With("run_id", spec.RunID, "component", "connectors")}
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = s.Close(cctx)
		}
	}()
	for _, l := range locals {
		if _, dup := s.sidecars[l.Name]; dup {
			return nil, fmt.Errorf("connectors of run %s: two named %s", spec.RunID, l.Name)
		}
		sc, err := s.start(ctx, spec, l)
		if sc != nil {
			s.mu.Lock()
			s.sidecars[l.Name] = sc
			s.mu.Unlock()
		}
		if err != nil {
			return nil, fmt.Errorf("connector %s: %w", l.Name, err)
		}
	}
	return s, nil
}

func (s *Set) start(ctx context.Context, spec Spec, l Local) (*sidecar, error) {
	img, err := egress.ConnectorImage(ctx, s.cli, spec.Executable, l.Image)
	if err != nil {
		return nil, err
	}
	command := l.Command
	if len(command) == 0 {
		info, err := s.cli.ImageInspect(ctx, l.Image)
		if err != nil {
			return nil, fmt.Errorf("inspect image %s: %s", l.Image, sandbox.CleanDockerError(err))
		}
		if info.Config != nil {
			command = append(append([]string{}, info.Config.Entrypoint...), info.Config.Cmd...)
		}
		if len(command) == 0 {
			return nil, fmt.Errorf("image %s has no entrypoint or command, so the connector needs command: [...]", l.Image)
		}
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	sc := &sidecar{name: l.Name, token: hex.EncodeToString(b), logsDone: make(chan struct{})}
	labels := map[string]string{}
	for k, v := range spec.Owner {
		labels[k] = v
	}
	labels[sandbox.LabelRun] = spec.RunID
	labels[egress.LabelRole] = RoleConnector
	labels[LabelConnector] = l.Name
	env := make([]string, 0, len(l.ProxyEnv))
	for k, v := range l.ProxyEnv {
		env = append(env, k+"="+v)
	}
	name := egress.RunBase(spec.RunID) + "-mcp-" + l.Name // connector names are letters, digits, _ and -
	id, err := egress.CreateService(ctx, s.cli, name, egress.Service{Image: img, Entrypoint: []string{egress.BridgePath, "mcp-bridge"},
		User: sandbox.DefaultUser, Env: env, Labels: labels, Network: spec.Network, Memory: 1 << 30, Tmp: true})
	if err != nil {
		return nil, fmt.Errorf("create sidecar %s: %s", name, sandbox.CleanDockerError(err))
	}
	sc.container = id
	if ctx.Err() != nil {
		return sc, context.Cause(ctx)
	}
	var outR, errR io.Reader
	sc.hijack, outR, errR, err = egress.Attach(ctx, s.cli, sc.container)
	if err != nil {
		return sc, fmt.Errorf("attach to sidecar %s: %s", name, sandbox.CleanDockerError(err))
	}
	go func() {
		defer close(sc.logsDone)
		egress.RelayLogs(s.log.With("connector", l.Name), "connector: ", errR)
	}()
	ready := make(chan mcpbridge.Ready, 1)
	go func() {
		var r mcpbridge.Ready
		if err := json.NewDecoder(outR).Decode(&r); err != nil {
			r.Error = "the bridge ended before it was ready (see the runner's log for its output)"
		}
		ready <- r
		_, _ = io.Copy(io.Discard, outR)
	}()
	if err := s.cli.ContainerStart(ctx, sc.container, container.StartOptions{}); err != nil {
		return sc, fmt.Errorf("start sidecar %s: %s", name, sandbox.CleanDockerError(err))
	}
	bc := mcpbridge.Config{Name: l.Name, Listen: fmt.Sprintf(":%d", Port), Token: sc.token, Command: command, Env: l.Env,
		Tools: l.Tools, StartTimeout: spec.StartTimeout}
	if err := json.NewEncoder(sc.hijack.Conn).Encode(bc); err != nil {
		return sc, fmt.Errorf("send the configuration to sidecar %s: %w", name, err)
	}
	wctx, cancel := context.WithTimeout(ctx, spec.StartTimeout+5*time.Second)
	defer cancel()
	select {
	case r := <-ready:
		if !r.OK {
			return sc, fmt.Errorf("sidecar %s: %s", name, r.Error)
		}
		sc.tools = r.Tools
		if len(r.Missing) > 0 {
			s.log.Warn("connector lacks allow-listed tools", "connector", l.Name, "missing", r.Missing)
		}
	case <-wctx.Done():
		return sc, fmt.Errorf("sidecar %s: not ready within %s", name, spec.StartTimeout)
	}
	if sc.ip, err = egress.ServiceIP(ctx, s.cli, sc.container, spec.Network); err != nil {
		return sc, fmt.Errorf("sidecar %s: %w", name, err)
	}
	s.log.Info("connector started", "connector", l.Name, "container", name, "ip", sc.ip, "tools", sc.tools)
	return sc, nil
}

// URL is where an agent reaches connector name, "" when the set has no such connector.
func (s *Set) URL(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.sidecars[name]
	if sc == nil || sc.ip == "" {
		return ""
	}
	return fmt.Sprintf("http://%s:%d/%s%s", sc.ip, Port, sc.token, mcpbridge.Path)
}

// IP is connector name's address on the run's internal network ("" when there is none).
func (s *Set) IP(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sc := s.sidecars[name]; sc != nil {
		return sc.ip
	}
	return ""
}

// Close removes every sidecar. It is safe to call twice.
func (s *Set) Close(ctx context.Context) error {
	s.mu.Lock()
	scs := s.sidecars
	s.sidecars = map[string]*sidecar{}
	s.mu.Unlock()
	var errs []error
	for _, sc := range scs {
		if sc.hijack.Conn != nil {
			_ = sc.hijack.CloseWrite() // the end of stdin is the bridge's signal to stop
		}
		if sc.container != "" {
			err := s.cli.ContainerRemove(ctx, sc.container, container.RemoveOptions{Force: true, RemoveVolumes: true})
			if err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove the sidecar of connector %s of run %s: %s", sc.name, s.runID, sandbox.CleanDockerError(err)))
			}
		}
		if sc.hijack.Conn != nil {
			sc.hijack.Close()
			select {
			case <-sc.logsDone:
			case <-time.After(2 * time.Second):
			}
		}
	}
	return errors.Join(errs...)
}
