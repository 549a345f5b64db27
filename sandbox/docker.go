package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// Defaults of the Docker sandbox, used when Options and Spec leave a value zero.
var (
	DefaultResources = Resources{CPUs: 1, Memory: 2 << 30, Pids: 512, Disk: 2 << 30}
)

const (
	defaultTimeout        = time.Hour
	defaultStopGrace      = 10 * time.Second
	defaultTmpSize        = 256 << 20
	defaultCleanupTimeout = 30 * time.Second
	// maxEnvPrompt keeps AGENT_PROMPT below Linux's 128 KiB limit on one environment string;
	// a longer prompt is only in prompt.md (exec would fail with E2BIG otherwise).
	maxEnvPrompt = 100 << 10
)

// Options configure the Docker sandbox. Zero values mean the defaults.
type Options struct {
	Logger *slog.Logger
	// Resources fill the zero fields of a Spec's Resources; zero fields here use
	// DefaultResources.
	Resources Resources
	// Timeout is used when a Spec has none (default 1h).
	Timeout time.Duration
	// StopGrace is how long an agent has between SIGTERM and SIGKILL (default 10s; rounded up
	// to whole seconds, Docker's unit).
	StopGrace time.Duration
	// TmpSize is the size of the /tmp tmpfs in bytes (default 256 MiB).
	TmpSize int64
	// CleanupTimeout bounds stopping and removing a container once the run is over or
	// cancelled (default 30s, plus StopGrace).
	CleanupTimeout time.Duration
	// NoInit disables Docker's init process (PID 1 that forwards signals and reaps zombies).
	NoInit bool
	// Owner labels every container with who made it (OwnerLabels), so that Reap elsewhere
	// tells its own leftovers from the live agents of others on the same engine.
	Owner map[string]string
	// InitExecutable is a static Linux runner executable (whose InitCommand supervises the
	// agent) to mount at InitPath, so the engine stops an agent at its deadline even when the
	// runner is gone; empty leaves the deadline to the runner alone. An agent without an Argv
	// runs its image's own entrypoint and command under the supervisor.
	InitExecutable string
}

// Docker is the Sandbox on a Docker engine (API 1.41 or newer).
type Docker struct {
	cli  client.APIClient
	opts Options
	log  *slog.Logger
	// directOnce logs once that direct connections cannot be watched from here.
	directOnce sync.Once
	// images caches images known to be present, so if-missing and never cost one inspect per
	// image per process rather than one per run.
	images sync.Map
	// probed holds ProbeOverlay's answer per directory.
	probeMu sync.Mutex
	probed  map[string]error
}

var _ Sandbox = (*Docker)(nil)

// NewDocker returns a Docker sandbox using cli.
func NewDocker(cli client.APIClient, opts Options) *Docker {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Resources = opts.Resources.Or(DefaultResources)
	if opts.Timeout <= 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = defaultStopGrace
	}
	if opts.TmpSize <= 0 {
		opts.TmpSize = defaultTmpSize
	}
	if opts.CleanupTimeout <= 0 {
		opts.CleanupTimeout = defaultCleanupTimeout
	}
	return &Docker{cli: cli, opts: opts, log: opts.Logger}
}

// Connect makes a client from the environment (DOCKER_HOST, ...) with API version
// negotiation, checks that the engine answers, and returns a Docker sandbox on it.
func Connect(ctx context.Context, opts Options) (*Docker, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, &InfraError{Op: "connect to", Object: "the Docker engine", Err: err}
	}
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		return nil, &InfraError{Op: "connect to", Object: "the Docker engine at " + cli.DaemonHost(), Err: err}
	}
	return NewDocker(cli, opts), nil
}

// Client returns the Docker client the sandbox uses.
func (d *Docker) Client() client.APIClient { return d.cli }

// Prepare implements Sandbox.
func (d *Docker) Prepare(ctx context.Context, spec *Spec) (*Handle, error) {
	if l := spec.WorkspaceLayers; l != nil && l.FSMonitor && d.opts.InitExecutable == "" {
		return nil, &SpecError{JobID: spec.JobID, Field: "WorkspaceLayers.FSMonitor", Msg: "the fsmonitor hook is the runner's own static executable: set Options.InitExecutable"}
	}
	if err := validate(spec); err != nil {
		return nil, err
	}
	imageArgv, err := d.ensureImage(ctx, spec)
	if err != nil {
		return nil, err
	}
	if err := prepareDirs(spec); err != nil {
		return nil, err
	}
	created := spec
	if len(spec.Argv) == 0 && d.opts.InitExecutable != "" && len(imageArgv) > 0 {
		// The image's own command runs under the supervisor too, so its deadline holds
		// without the runner: the same argv Docker would have run, made explicit.
		c := *spec
		c.Argv = imageArgv
		created = &c
	}
	if len(spec.Prompt) > maxEnvPrompt {
		d.log.WarnContext(ctx, "prompt too long for $AGENT_PROMPT; it is only in $AGENT_OUTPUT_DIR/prompt.md",
			"run_id", spec.RunID, "job", spec.JobID, "bytes", len(spec.Prompt))
	}
	name := containerName(spec)
	cfg, hc, nc := d.containerConfig(created, name)
	var volumes []string
	if l := spec.WorkspaceLayers; l != nil {
		// Named like its container, with the same labels, so the reaper pairs them.
		if err := d.createVolume(ctx, spec, name, overlayOptions(l), cfg.Labels); err != nil {
			return nil, err
		}
		volumes = append(volumes, name)
		if d.fsmonitor(spec) {
			if err := d.createVolume(ctx, spec, lowerVolume(name), lowerOptions(l), cfg.Labels); err != nil {
				_ = d.removeVolume(context.WithoutCancel(ctx), name)
				return nil, err
			}
			volumes = append(volumes, lowerVolume(name))
		}
	}
	// The create is not abandoned when ctx ends: the engine would finish it anyway, leaving a
	// container whose id nobody got back. It is removed here instead.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.opts.CleanupTimeout)
	resp, err := d.cli.ContainerCreate(cctx, cfg, hc, nc, nil, name)
	cancel()
	h := &Handle{ID: resp.ID, Name: name, Spec: spec, volumes: volumes}
	if err != nil {
		h.removed = true // no container; only the volume, if any, is left to remove
		d.remove(context.WithoutCancel(ctx), h)
		return nil, &InfraError{Op: "create container", Object: fmt.Sprintf("for job %q", spec.JobID), Err: err}
	}
	for _, w := range resp.Warnings {
		d.log.WarnContext(ctx, "docker warning on create", "run_id", spec.RunID, "job", spec.JobID, "warning", w)
	}
	if ctx.Err() != nil {
		d.remove(context.WithoutCancel(ctx), h)
		return nil, &InfraError{Op: "create container", Object: fmt.Sprintf("for job %q", spec.JobID), Err: context.Cause(ctx)}
	}
	for _, v := range spec.Secrets {
		h.secrets = append(h.secrets, v)
	}
	return h, nil
}

// Run implements Sandbox.
func (d *Docker) Run(ctx context.Context, h *Handle, logs io.Writer) (*Result, error) {
	if h == nil || h.ID == "" {
		return nil, errors.New("sandbox: Run on a handle that Prepare did not return")
	}
	if h.ran {
		return nil, fmt.Errorf("sandbox: Run called twice for job %q", h.Spec.JobID)
	}
	h.ran = true
	if logs == nil {
		logs = io.Discard
	}
	spec := h.Spec
	job := fmt.Sprintf("for job %q", spec.JobID)
	timeout := d.timeout(spec)
	// Stopping, collecting the exit and removing must happen even when ctx is cancelled.
	bg := context.WithoutCancel(ctx)
	res := &Result{Started: time.Now()}
	defer d.remove(bg, h)

	if spec.WorkspaceReady != nil && ctx.Err() == nil {
		if err := spec.WorkspaceReady(ctx); err != nil {
			if ctx.Err() != nil {
				res.Outcome, res.Finished = Cancelled, time.Now()
				return res, nil
			}
			return nil, &InfraError{Op: "prepare workspace", Err: err}
		}
		if l := spec.WorkspaceLayers; l != nil {
			if fi, err := os.Stat(l.Lower); err != nil || !fi.IsDir() {
				return nil, &InfraError{Op: "prepare workspace", Object: fmt.Sprintf("for job %q", spec.JobID),
					Err: fmt.Errorf("the overlay's lower layer %s is not a directory once ready (%v)", l.Lower, err)}
			}
		}
		if err := giveToUser(spec, workspaceOwned(spec)); err != nil {
			return nil, err
		}
	}
	if ctx.Err() != nil {
		res.Outcome, res.Finished = Cancelled, time.Now()
		return res, nil
	}
	watchCtx, stopWatching := context.WithCancel(bg)
	defer stopWatching()
	disk := spec.Resources.Disk
	if disk == 0 {
		disk = d.opts.Resources.Disk
	}
	// An overlay workspace's writes are all in its upper layer: watching it costs O(changes).
	diskOver := watchDisk(watchCtx, disk, workspaceOwned(spec), spec.OutputDir)
	if err := d.cli.ContainerStart(ctx, h.ID, container.StartOptions{}); err != nil {
		if ctx.Err() != nil {
			res.Outcome, res.Finished = Cancelled, time.Now()
			return res, nil
		}
		return nil, &InfraError{Op: "start container", Object: job, Err: err}
	}

	var direct *directWatcher
	if spec.Network.Mode == NetworkAllow {
		if direct = d.watchDirect(bg, h); direct != nil {
			defer direct.finish() // on the paths that return early
		}
	}

	waitCtx, stopWaiting := context.WithCancel(bg)
	defer stopWaiting()
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		d.copyLogs(waitCtx, h, logs)
	}()
	statusCh, errCh := d.cli.ContainerWait(waitCtx, h.ID, container.WaitConditionNotRunning)
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	var status container.WaitResponse
	var stopReason Outcome
	select {
	case status = <-statusCh:
	case err := <-errCh:
		return nil, &InfraError{Op: "wait for container", Object: job, Err: err}
	case <-timer.C:
		stopReason = TimedOut
	case <-ctx.Done():
		stopReason = Cancelled
	case <-diskOver:
		stopReason = DiskLimit
	}
	stopWatching()
	if stopReason != "" {
		// An agent over its disk limit gets no grace period to write more.
		grace := d.opts.StopGrace
		if stopReason == DiskLimit {
			grace = 0
		}
		var err error
		if status, err = d.stop(bg, h, grace, statusCh, errCh); err != nil {
			return nil, err
		}
	}
	res.Finished = time.Now()
	res.Duration = res.Finished.Sub(res.Started)
	res.ExitCode = int(status.StatusCode)
	if direct != nil {
		res.Direct = direct.finish()
	}

	// The log stream ends when the container stops; bound the wait in case the engine is slow.
	select {
	case <-logsDone:
	case <-time.After(5 * time.Second):
		d.log.WarnContext(ctx, "log stream did not end after the container stopped", "run_id", spec.RunID, "job", spec.JobID)
		stopWaiting()
		<-logsDone
	}

	switch {
	case stopReason != "":
		res.Outcome = stopReason
		if stopReason == DiskLimit {
			res.DiskLimit = disk
		}
	case res.ExitCode == ExitDeadline && d.opts.InitExecutable != "" && res.Duration >= timeout:
		// The supervisor's deadline came a moment before the runner's timer.
		res.Outcome = TimedOut
	case res.ExitCode == 0:
		res.Outcome = Success
	default:
		// Only a failure can be an OOM kill, so a successful run costs no inspect.
		res.Outcome = Failed
		info, err := d.cli.ContainerInspect(bg, h.ID)
		if err != nil {
			return nil, &InfraError{Op: "inspect container", Object: job, Err: err}
		}
		if info.State != nil && info.State.OOMKilled {
			res.Outcome = OOM
		}
	}
	return res, nil
}

// timeout is spec's run timeout, or the sandbox's default.
func (d *Docker) timeout(spec *Spec) time.Duration {
	if spec.Timeout > 0 {
		return spec.Timeout
	}
	return d.opts.Timeout
}

// watchDirect starts watching the started container for connections that bypass the proxy;
// nil when that cannot be done here, which is logged once.
func (d *Docker) watchDirect(ctx context.Context, h *Handle) *directWatcher {
	info, err := d.cli.ContainerInspect(ctx, h.ID)
	if err != nil || info.State == nil {
		d.log.WarnContext(ctx, "inspect container to watch direct connections", "run_id", h.Spec.RunID, "job", h.Spec.JobID, "err", CleanDockerError(err))
		return nil
	}
	w, err := watchDirect("/proc", info.State.Pid, h.ID, h.Spec.Network.Proxy)
	if err != nil {
		d.directOnce.Do(func() {
			d.log.WarnContext(ctx, "connections that bypass the egress proxy fail but will not be listed in reports", "reason", err)
		})
		return nil
	}
	return w
}

// stop sends SIGTERM, waits the grace period, kills, and returns the container's exit status.
func (d *Docker) stop(ctx context.Context, h *Handle, stopGrace time.Duration, statusCh <-chan container.WaitResponse, errCh <-chan error) (container.WaitResponse, error) {
	job := fmt.Sprintf("for job %q", h.Spec.JobID)
	grace := int(math.Ceil(stopGrace.Seconds()))
	ctx, cancel := context.WithTimeout(ctx, d.opts.CleanupTimeout+stopGrace)
	defer cancel()
	if err := d.cli.ContainerStop(ctx, h.ID, container.StopOptions{Timeout: &grace}); err != nil && !cerrdefs.IsNotFound(err) {
		return container.WaitResponse{}, &InfraError{Op: "stop container", Object: job, Err: err}
	}
	select {
	case st := <-statusCh:
		return st, nil
	case err := <-errCh:
		return container.WaitResponse{}, &InfraError{Op: "wait for container", Object: job, Err: err}
	case <-ctx.Done():
		return container.WaitResponse{}, &InfraError{Op: "wait for container", Object: job, Err: fmt.Errorf("still running after stop: %w", ctx.Err())}
	}
}

// remove force-removes the container, then its overlay volume, on their own deadline; a
// failure is logged and left for Destroy or the reaper.
func (d *Docker) remove(ctx context.Context, h *Handle) {
	if err := d.destroy(ctx, h); err != nil {
		d.log.WarnContext(ctx, "remove container", "run_id", h.Spec.RunID, "job", h.Spec.JobID, "container", h.Name, "err", CleanDockerError(err))
	}
}

// destroy removes what of h is left: the container, then the volume (which the engine
// refuses to remove while a container uses it).
func (d *Docker) destroy(ctx context.Context, h *Handle) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.CleanupTimeout)
	defer cancel()
	if !h.removed {
		err := d.cli.ContainerRemove(ctx, h.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			return &InfraError{Op: "remove container", Object: fmt.Sprintf("for job %q", h.Spec.JobID), Err: err}
		}
		h.removed = true
	}
	for len(h.volumes) > 0 {
		v := h.volumes[0]
		if err := d.removeVolume(ctx, v); err != nil {
			return &InfraError{Op: "remove overlay volume", Object: fmt.Sprintf("%s for job %q", v, h.Spec.JobID), Err: err}
		}
		h.volumes = h.volumes[1:]
	}
	return nil
}

// Destroy implements Sandbox.
func (d *Docker) Destroy(ctx context.Context, h *Handle) error {
	if h == nil || h.ID == "" && len(h.volumes) == 0 {
		return nil
	}
	return d.destroy(context.WithoutCancel(ctx), h)
}

// ensureImage applies the pull policy and returns the image's own command (entrypoint and
// cmd, as Docker joins them). Presence is cached per process for never and if-missing; always
// pulls every time, as asked.
func (d *Docker) ensureImage(ctx context.Context, spec *Spec) ([]string, error) {
	policy := spec.PullPolicy
	if policy == "" {
		policy = PullIfMissing
	}
	img := spec.Image
	obj := strconv.Quote(img)
	if policy != PullAlways {
		if argv, ok := d.images.Load(img); ok {
			return argv.([]string), nil
		}
		argv, err := d.imageArgv(ctx, img)
		switch {
		case err == nil:
			return argv, nil
		case !cerrdefs.IsNotFound(err):
			return nil, &InfraError{Op: "inspect image", Object: obj, Err: err}
		case policy == PullNever:
			return nil, &InfraError{Op: "find image", Object: obj, Err: errors.New(
				"not present on the Docker engine and pull-policy is never: build or load it first")}
		}
	}
	if err := d.pull(ctx, img); err != nil {
		why := "not present on the Docker engine and the pull failed (pull-policy if-missing)"
		if policy == PullAlways {
			why = "the pull failed (pull-policy always)"
		}
		return nil, &InfraError{Op: "pull image", Object: obj, Err: fmt.Errorf("%s: %w", why, err)}
	}
	argv, err := d.imageArgv(ctx, img)
	if err != nil {
		return nil, &InfraError{Op: "inspect image", Object: obj, Err: err}
	}
	return argv, nil
}

// imageArgv inspects img and caches its own command.
func (d *Docker) imageArgv(ctx context.Context, img string) ([]string, error) {
	info, err := d.cli.ImageInspect(ctx, img)
	if err != nil {
		return nil, err
	}
	var argv []string
	if info.Config != nil {
		argv = append(append(argv, info.Config.Entrypoint...), info.Config.Cmd...)
	}
	d.images.Store(img, argv)
	return argv, nil
}

func (d *Docker) pull(ctx context.Context, img string) error {
	rc, err := d.cli.ImagePull(ctx, img, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	// The pull's outcome is in its JSON message stream, not in the HTTP status.
	dec := json.NewDecoder(rc)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read pull progress: %w", err)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
}

// ContainerConfig returns the hardened container configuration Prepare creates for spec, so
// that a benchmark's baseline can drive the very same container through the Docker API.
// An overlay workspace's volume is named like the container.
func (d *Docker) ContainerConfig(spec *Spec) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	return d.containerConfig(spec, containerName(spec))
}

// containerConfig is the hardened container for spec; name is the container's, and its
// overlay volume's when it has one.
func (d *Docker) containerConfig(spec *Spec, name string) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	labels := d.labels(spec)

	user := spec.User
	if user == "" {
		user = defaultUser()
	}
	cfg := &container.Config{
		Image:      spec.Image,
		Env:        containerEnv(spec),
		WorkingDir: WorkspacePath,
		User:       user,
		Labels:     labels,
	}
	argv := spec.Argv
	supervised := d.opts.InitExecutable != "" && len(argv) > 0
	if supervised {
		argv = initArgv(argv, d.timeout(spec), d.opts.StopGrace)
	}
	if len(argv) > 0 {
		cfg.Entrypoint = argv[:1]
		cfg.Cmd = argv[1:]
		if cfg.Cmd == nil {
			cfg.Cmd = []string{}
		}
	}

	r := spec.Resources.Or(d.opts.Resources)
	pids := r.Pids
	initProc := !d.opts.NoInit
	hc := &container.HostConfig{
		NetworkMode: container.NetworkMode(NetworkNone),
		Mounts: []mount.Mount{
			workspaceMount(spec, name),
			{Type: mount.TypeBind, Source: spec.OutputDir, Target: OutputPath},
		},
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		ReadonlyRootfs: true,
		Tmpfs:          map[string]string{"/tmp": fmt.Sprintf("rw,nosuid,nodev,size=%d,mode=1777", d.opts.TmpSize)},
		IpcMode:        "private",
		Init:           &initProc,
		Resources: container.Resources{
			Memory:     r.Memory,
			MemorySwap: r.Memory, // equal to Memory: no swap, so a hog is killed rather than slowed
			NanoCPUs:   int64(r.CPUs * 1e9),
			PidsLimit:  &pids,
		},
	}
	if supervised {
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: d.opts.InitExecutable, Target: InitPath, ReadOnly: true})
	}
	if d.fsmonitor(spec) {
		hc.Mounts = append(hc.Mounts, fsmonitorMounts(spec.WorkspaceLayers, d.opts.InitExecutable, lowerVolume(name))...)
	}
	switch spec.Network.Mode {
	case NetworkOpen:
		hc.NetworkMode = "bridge"
	case NetworkAllow:
		hc.NetworkMode = container.NetworkMode(spec.Network.DockerNetwork)
		hc.DNS = []string{AllowDNS}
	}
	return cfg, hc, nil
}

// containerEnv is the declared env, the secrets, the proxy env, then the sandbox contract,
// which wins over anything declared with the same name.
func containerEnv(spec *Spec) []string {
	env := map[string]string{}
	for k, v := range spec.Env {
		env[k] = v
	}
	for k, v := range spec.Secrets {
		env[k] = v
	}
	if spec.Network.Mode == NetworkAllow {
		for k, v := range spec.Network.ProxyEnv {
			env[k] = v
		}
	}
	env["HOME"] = "/tmp"
	env[EnvOutputDir] = OutputPath
	if len(spec.Prompt) <= maxEnvPrompt {
		env[EnvPrompt] = spec.Prompt
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// validate refuses a Spec the sandbox cannot run safely, before anything touches Docker.
func validate(spec *Spec) error {
	if spec == nil {
		return errors.New("sandbox: nil Spec")
	}
	if err := spec.CheckCommon(); err != nil {
		return err
	}
	bad := func(field, format string, args ...any) error {
		return &SpecError{JobID: spec.JobID, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch spec.Network.Mode {
	case "", NetworkNone, NetworkOpen:
	case NetworkAllow:
		if spec.Network.DockerNetwork == "" {
			return bad("Network", "an allow-list (%s) needs the runner's egress proxy, which is not available yet; "+
				"use network: none, or network: open for full egress", strings.Join(spec.Network.Allow, ", "))
		}
	default:
		return bad("Network.Mode", "%q is not none, open or allow", spec.Network.Mode)
	}
	dirs := map[string]string{"OutputDir": spec.OutputDir}
	if l := spec.WorkspaceLayers; l != nil {
		if spec.WorkspaceDir != "" {
			return bad("WorkspaceDir", "set together with WorkspaceLayers; give one workspace")
		}
		if err := checkLayers(l); err != nil {
			return bad("WorkspaceLayers", "%v", err)
		}
		dirs["WorkspaceLayers.Upper"], dirs["WorkspaceLayers.Work"] = l.Upper, l.Work
		if spec.WorkspaceReady == nil {
			// Otherwise the lower layer may still be being made: Run checks it once ready.
			dirs["WorkspaceLayers.Lower"] = l.Lower
		}
	} else {
		dirs["WorkspaceDir"] = spec.WorkspaceDir
	}
	for name, dir := range dirs {
		if !filepath.IsAbs(dir) {
			return bad(name, "%q is not an absolute host path", dir)
		}
		if fi, err := os.Stat(dir); err != nil {
			return bad(name, "%v", err)
		} else if !fi.IsDir() {
			return bad(name, "%s is not a directory", dir)
		}
	}
	for _, m := range []map[string]string{spec.Env, spec.Secrets} {
		for k := range m {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return bad("Env", "%q is not a valid variable name", k)
			}
		}
	}
	if spec.Resources.CPUs < 0 || spec.Resources.Memory < 0 || spec.Resources.Pids < 0 || spec.Resources.Disk < 0 {
		return bad("Resources", "negative limit")
	}
	if spec.Resources.Memory != 0 && spec.Resources.Memory < 6<<20 {
		return bad("Resources.Memory", "%d bytes is below Docker's minimum of 6 MiB", spec.Resources.Memory)
	}
	if _, _, err := parseUser(spec.User); err != nil {
		return bad("User", "%v", err)
	}
	return nil
}

// DefaultOwner returns the uid and gid an agent that declares no user runs as, and so who its
// workspace must belong to. A runner running as root gives the workspace to DefaultUser. Any
// other runner (`runner exec` by a user in the docker group) can give no file away, so its
// agents run as the runner's own uid and gid: still not root, and able to write the workspace.
func DefaultOwner() (uid, gid int) {
	if uid, gid := runnerIDs(); uid != 0 {
		return uid, gid
	}
	uid, gid, _ = parseUser(DefaultUser)
	return uid, gid
}

// runnerIDs is the runner's effective uid and gid; a variable so a test can be someone else.
var runnerIDs = func() (uid, gid int) { return os.Geteuid(), os.Getegid() }

// defaultUser is DefaultOwner as a container user.
func defaultUser() string {
	uid, gid := DefaultOwner()
	return strconv.Itoa(uid) + ":" + strconv.Itoa(gid)
}

// parseUser reads uid[:gid]; ok is false for names, which Docker resolves in the image.
func parseUser(user string) (uid, gid int, err error) {
	if user == "" {
		return parseUser(defaultUser())
	}
	u, g, hasGroup := strings.Cut(user, ":")
	if u == "" || (hasGroup && g == "") {
		return -1, -1, fmt.Errorf("%q is not uid[:gid]", user)
	}
	uid, uerr := strconv.Atoi(u)
	gid = uid
	var gerr error
	if hasGroup {
		gid, gerr = strconv.Atoi(g)
	}
	if uerr != nil || gerr != nil {
		return -1, -1, nil // a name: the image resolves it, Prepare cannot chown for it
	}
	if uid < 0 || gid < 0 {
		return -1, -1, fmt.Errorf("%q has a negative id", user)
	}
	return uid, gid, nil
}

// prepareDirs writes prompt.md and makes the directories writable for the container user: the
// workspace too, unless it is still being filled (then Run does it, once it is ready).
func prepareDirs(spec *Spec) error {
	prompt := filepath.Join(spec.OutputDir, PromptFile)
	if err := os.WriteFile(prompt, []byte(spec.Prompt), 0o644); err != nil {
		return &InfraError{Op: "write prompt", Object: fmt.Sprintf("for job %q", spec.JobID), Err: err}
	}
	dirs := []string{spec.OutputDir}
	if spec.WorkspaceReady == nil {
		dirs = append(dirs, workspaceOwned(spec))
	}
	return giveToUser(spec, dirs...)
}

// workspaceOwned is the host directory of the workspace the agent writes: the bind-mounted
// WorkspaceDir, or an overlay's upper layer. The root of an overlay takes its owner and mode
// from the upper layer's root, and every write lands there, so the shared lower layer is
// never walked (nor chowned: it is other jobs' too).
func workspaceOwned(spec *Spec) string {
	if spec.WorkspaceLayers != nil {
		return spec.WorkspaceLayers.Upper
	}
	return spec.WorkspaceDir
}

// giveToUser chowns dirs to the container user when the runner can (it is root).
func giveToUser(spec *Spec, dirs ...string) error {
	uid, gid, _ := parseUser(spec.User)
	if uid < 0 || os.Geteuid() != 0 {
		// Without root the runner cannot chown; it must create the directories writable.
		return nil
	}
	for _, dir := range dirs {
		if err := chownTree(dir, uid, gid); err != nil {
			return &InfraError{Op: "make writable for uid " + strconv.Itoa(uid), Object: dir, Err: err}
		}
	}
	return nil
}

// chownTree gives dir to uid:gid, unless its top is already theirs (the workspace package
// may create it that way). Files under .git/objects are skipped: git never rewrites them, and
// with `git clone --local` they are hard links shared with the source repository, whose
// owner must not change.
func chownTree(dir string, uid, gid int) error {
	if owned(dir, uid, gid) {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && strings.Contains(filepath.ToSlash(path), "/.git/objects/") {
			return nil
		}
		return os.Lchown(path, uid, gid)
	})
}

func containerName(spec *Spec) string {
	clean := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
				b[i] = '_'
			}
		}
		if len(b) > 40 {
			b = b[:40]
		}
		return string(b)
	}
	r := make([]byte, 3)
	_, _ = rand.Read(r)
	return "agentrunner-" + clean(spec.RunID) + "-" + clean(spec.JobID) + "-" + hex.EncodeToString(r)
}
