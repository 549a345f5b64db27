// Package sandbox runs one agent command in an isolated, hardened container: the Sandbox
// interface the engine talks to, and its Docker implementation (images and pull policy,
// hardening, limits, network mode, live logs with secrets masked, typed outcomes, cleanup and
// the reaping of a crash's leftovers).
//
// It knows nothing about routines, plans, git or GitHub: the engine hands it a concrete Spec
// with host paths for the workspace and the output directory, and reads the output directory
// (outputs.json, report.md, findings.json) itself afterwards.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Labels put on every Docker object the sandbox creates, so a crash's leftovers can be found.
const (
	LabelRun = "agentrunner.run"
	LabelJob = "agentrunner.job"
)

// Paths and variables inside the sandbox: the contract an agent sees.
const (
	WorkspacePath = "/workspace"   // the job's git workspace, the working directory
	OutputPath    = "/agent/out"   // $AGENT_OUTPUT_DIR: outputs.json, report.md, findings.json
	PromptFile    = "prompt.md"    // written into the output directory before the agent starts
	EnvPrompt     = "AGENT_PROMPT" // the prompt text
	EnvOutputDir  = "AGENT_OUTPUT_DIR"
	DefaultUser   = "10001:10001" // a fixed non-root uid:gid no image is likely to give privileges (see DefaultOwner)
)

// Sandbox runs agents. Implementations must be safe for concurrent use by many goroutines on
// different Handles; one Handle is used by one goroutine at a time.
//
// Call order for one job: Prepare, then Run at most once, then Destroy. Run removes the
// container itself when the agent ends, whatever the outcome; Destroy removes whatever is left
// (Run never called, Run's cleanup failed). Destroy is safe to call twice, on a nil Handle, and
// after a failed Prepare (which cleans up after itself and returns a nil Handle). Cancel a
// running agent by cancelling Run's context, not by calling Destroy concurrently.
type Sandbox interface {
	// Prepare validates spec, makes the image available (per spec.PullPolicy), writes the
	// prompt into the output directory and creates the container without starting it.
	Prepare(ctx context.Context, spec *Spec) (*Handle, error)
	// Run starts the prepared container, streams its stdout and stderr to logs (secret values
	// masked) while it runs, waits for it and removes it. The agent's fate is the Result's
	// Outcome; a non-nil error means the infrastructure failed (an *InfraError), never the
	// agent. When ctx is cancelled or spec.Timeout passes, the agent is stopped (SIGTERM, a
	// grace period, SIGKILL) and the outcome is Cancelled or TimedOut.
	Run(ctx context.Context, h *Handle, logs io.Writer) (*Result, error)
	// Destroy removes the container and anything else Prepare created, if still there.
	Destroy(ctx context.Context, h *Handle) error
}

// Handle is one prepared sandbox. Its exported fields are informational; a fake Sandbox may
// fill them however it likes.
type Handle struct {
	// ID is the container id (or the fake's own id).
	ID string
	// Name is the container name, agentrunner-<run>-<job>-<random>.
	Name string
	Spec *Spec

	secrets []string
	// volumes are the overlay workspace's volumes (lowerVolume's too) until they are removed.
	volumes []string
	removed bool
	ran     bool
}

// Pull policies.
const (
	PullNever     = "never"
	PullIfMissing = "if-missing" // the default
	PullAlways    = "always"
)

// Network modes.
const (
	NetworkNone  = "none"  // loopback only (the default)
	NetworkOpen  = "open"  // full egress through the engine's default bridge
	NetworkAllow = "allow" // egress only to Allow, through the runner's egress proxy
)

// AllowDNS is the only DNS server an allow-listed agent's container is given. Engines without
// the fix for CVE-2024-29018 (Moby before 26.0.0, 25.0.5, 23.0.11) forward the lookups of a
// container on an internal network to the host's resolver from the host's namespace when that
// resolver is on the host's loopback: a way to exfiltrate data in names past the egress proxy.
// An explicit server is the advisory's workaround: the embedded resolver then forwards from the
// container's own namespace, where 127.0.0.1 is the agent's own loopback, so a lookup goes
// nowhere on every engine. Agents need no DNS: they reach the proxy by its IP address, and the
// proxy resolves the names it allows.
const AllowDNS = "127.0.0.1"

// Spec is everything needed to run one job's agent.
type Spec struct {
	RunID string
	JobID string // readable, e.g. audit[3]; used in names, labels and error messages
	Image string
	// PullPolicy is never, if-missing (empty means if-missing) or always.
	PullPolicy string
	// Argv replaces the image's entrypoint and command; empty keeps the image's own.
	Argv []string
	// Env is exactly what the routine declares; nothing of the runner's environment leaks in.
	Env map[string]string
	// Secrets are added to the environment and their values masked in the logs.
	Secrets map[string]string
	Prompt  string
	// WorkspaceDir and OutputDir are host paths, bind-mounted at /workspace and /agent/out.
	// Both must exist. Prepare makes them writable for User.
	WorkspaceDir string
	OutputDir    string
	// WorkspaceLayers, instead of WorkspaceDir, is an overlay workspace: the Docker sandbox
	// mounts it at /workspace through a volume of its own, made for the job and removed with
	// its container. Upper and Work must exist; Lower too unless WorkspaceReady is set. Only
	// Upper is made writable for User (and watched for the disk limit): the lower layer must
	// already be readable, and writable through copy-up, for User.
	WorkspaceLayers *Layers
	// WorkspaceReady, when set, says that the workspace is still being filled: Prepare creates
	// the container meanwhile (a bind mount or an overlay volume is resolved at start), and
	// Run calls it, then makes the workspace writable for User, before it starts the
	// container. Its error fails Run; the agent never starts on a half-made workspace.
	WorkspaceReady func(context.Context) error
	// User is uid:gid (or uid); empty means DefaultOwner's ids (DefaultUser under a root runner).
	User      string
	Resources Resources
	Network   Network
	// Timeout bounds the run; zero means the Docker sandbox's default.
	Timeout time.Duration
	// Labels are added to the container next to agentrunner.run and agentrunner.job.
	Labels map[string]string
}

// Resources are container limits; a zero field means the sandbox's default.
type Resources struct {
	CPUs   float64
	Memory int64 // bytes; swap is disabled (memory-swap = memory)
	Pids   int64
	// Disk bounds what the agent writes into WorkspaceDir and OutputDir, in bytes: a watcher
	// kills the container once they grew by more (see diskwatch.go).
	Disk int64
}

// Or is r with its zero fields taken from def.
func (r Resources) Or(def Resources) Resources {
	if r.CPUs == 0 {
		r.CPUs = def.CPUs
	}
	if r.Memory == 0 {
		r.Memory = def.Memory
	}
	if r.Pids == 0 {
		r.Pids = def.Pids
	}
	if r.Disk == 0 {
		r.Disk = def.Disk
	}
	return r
}

// Network is the egress policy.
type Network struct {
	// Mode is none (empty means none), open or allow.
	Mode  string
	Allow []string // host:port entries, for Mode allow
	// DockerNetwork is the seam for the egress proxy: the name of a network created for the
	// run on which a proxy enforces Allow. Mode allow is refused while it is empty, because an
	// allow-list must never be approximated by full egress.
	DockerNetwork string
	// ProxyEnv is added to the container's environment with Mode allow (HTTPS_PROXY, ...).
	ProxyEnv map[string]string
	// Proxy is the proxy's address on DockerNetwork. With Mode allow, every other destination
	// the container tries to connect to directly is reported in Result.Direct.
	Proxy string
}

// Outcome is what happened to the agent.
type Outcome string

// Outcomes. Infrastructure failures are errors, never outcomes.
const (
	Success  Outcome = "success"
	Failed   Outcome = "failed" // non-zero exit code
	TimedOut Outcome = "timed_out"
	OOM      Outcome = "oom" // killed by the kernel for exceeding its memory limit
	// DiskLimit is an agent killed for writing more than Resources.Disk.
	DiskLimit Outcome = "disk_limit"
	Cancelled Outcome = "cancelled"
)

// Result is one finished agent.
type Result struct {
	Outcome  Outcome
	ExitCode int
	Started  time.Time
	Finished time.Time
	Duration time.Duration
	// DiskLimit is, for Outcome DiskLimit, the limit the agent passed, in bytes.
	DiskLimit int64
	// Direct lists, with Network.Mode allow, the destinations ("ip:port") the agent tried to
	// reach without the proxy. The network has no route out, so each attempt failed.
	Direct []string
}

// InfraError is a failure of the infrastructure (Docker, the host), as opposed to the agent.
// Its message reads `<Op> <Object>: <cause>`, e.g.
// `create container for job "audit[3]": no such image: x:1`.
type InfraError struct {
	Op     string // what was being done: "create container", "pull image"
	Object string // what it was done to: `for job "audit[3]"`, `"alpine:3"`
	Err    error
}

func (e *InfraError) Error() string {
	msg := CleanDockerError(e.Err)
	if e.Object == "" {
		return e.Op + ": " + msg
	}
	return e.Op + " " + e.Object + ": " + msg
}

func (e *InfraError) Unwrap() error { return e.Err }

// CleanDockerError returns err's message without the noise Docker adds: the
// "Error response from daemon: " prefix (wherever wrapping put it) and containerd's
// ": unknown" status suffix.
func CleanDockerError(err error) string {
	if err == nil {
		return ""
	}
	msg := strings.ReplaceAll(err.Error(), "Error response from daemon: ", "")
	for strings.HasSuffix(msg, ": unknown") {
		msg = strings.TrimSuffix(msg, ": unknown")
	}
	return strings.TrimSpace(msg)
}

// CheckCommon refuses a Spec that no sandbox can run: without its ids or image, or with a pull
// policy it does not know. Each sandbox checks what is particular to it after.
func (spec *Spec) CheckCommon() error {
	if spec == nil {
		return errors.New("sandbox: nil Spec")
	}
	bad := func(field, format string, args ...any) error {
		return &SpecError{JobID: spec.JobID, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case spec.RunID == "":
		return bad("RunID", "empty")
	case spec.JobID == "":
		return bad("JobID", "empty")
	case spec.Image == "":
		return bad("Image", "empty")
	}
	switch spec.PullPolicy {
	case "", PullNever, PullIfMissing, PullAlways:
		return nil
	}
	return bad("PullPolicy", "%q is not never, if-missing or always", spec.PullPolicy)
}

// SpecError is a Spec the sandbox refuses before touching Docker.
type SpecError struct {
	JobID string
	Field string
	Msg   string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("sandbox for job %q: %s: %s", e.JobID, e.Field, e.Msg)
}
