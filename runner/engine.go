// Package runner is the engine: it executes a plan's DAG of agents, each instance in a
// sandbox on its own workspace, resolves dynamic fan-out and `if:` as needs finish, decides
// replica votes, consolidates kept changes into one patch and one report, and tells reporters.
// It sees only interfaces (Sandbox, Workspaces, Merger, Reporter), so a unit test runs whole
// plans on fakes and an integration test runs them on Docker.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

// Task is one instance ready to run in a container.
type Task struct {
	RunID    string
	Instance *plan.Instance
	// WorkspaceDir and OutputDir are host paths, mounted at /workspace and /agent/out.
	WorkspaceDir string
	OutputDir    string
	// WorkspaceLayers, when set, is the workspace as an overlay of a shared checkout: a
	// sandbox that can mount it mounts it at /workspace instead of WorkspaceDir.
	WorkspaceLayers *Layers
	// WorkspaceReady blocks until WorkspaceDir is filled (see Workspace.Ready). A sandbox may
	// create its container before, and must call it before anything runs in the workspace.
	WorkspaceReady func(context.Context) error
	// Env is the instance's declared environment; Secrets are values by name, to be added to
	// the environment and masked in logs.
	Env     map[string]string
	Secrets map[string]string
}

// WaitWorkspace blocks until the task's workspace is filled (at once when the task has no
// WorkspaceReady): what a sandbox that does not pass WorkspaceReady on calls before it runs
// anything in the workspace.
func (t *Task) WaitWorkspace(ctx context.Context) error {
	if t.WorkspaceReady == nil {
		return nil
	}
	return t.WorkspaceReady(ctx)
}

// Exit is how a container run ended.
type Exit struct {
	Outcome  result.Outcome
	ExitCode int
	Started  time.Time
	Finished time.Time
	// Blocked lists egress destinations refused for this task, when a proxy enforced a list.
	Blocked []string
	// Metered is what the task's model calls through the proxy cost (nil: none metered).
	Metered *result.Metered
	// Error explains an outcome the sandbox decided on, like a disk limit it enforced.
	Error string
}

// Sandbox runs tasks in containers. Run returns an error only when the infrastructure failed
// (the agent's own failure is an Exit outcome), and leaves no container behind either way.
// It must be safe for concurrent use.
type Sandbox interface {
	Run(ctx context.Context, t *Task, logs io.Writer) (*Exit, error)
}

// Workspaces gives each job its own git workspace. base is the commit to start from: empty
// for the run's commit, or a commit holding the kept changes of the agents the job needs, so a
// later stage works on what earlier stages produced. Create may return before the working
// tree is filled, so that the job's container is created meanwhile; Workspace.Ready says when
// it is.
type Workspaces interface {
	Create(ctx context.Context, runID, jobID, base string) (Workspace, error)
}

// Layers is an overlay workspace: a shared, read-only checkout (Lower) under the job's own
// copy-on-write layer (Upper), with the kernel's scratch directory (Work).
type Layers struct {
	Lower, Upper, Work string
	// FSMonitor: the lower layer's git configuration names the fsmonitor hook, which the
	// sandbox mounts (sandbox.Layers.FSMonitor).
	FSMonitor bool
}

// Workspace is one job's working copy. Remove is safe to call twice, also while the workspace
// is being filled.
type Workspace interface {
	Path() string
	// Layers is the workspace as an overlay; ok is false for a full checkout at Path.
	Layers() (l Layers, ok bool)
	// DiskUsage is what the workspace takes on disk of its own, in bytes.
	DiskUsage() (int64, error)
	// Ready waits until the working tree is filled and returns why it could not be, if so.
	Ready(ctx context.Context) error
	// ContainerEnv is what git inside the container needs to use the workspace (KEY=value).
	ContainerEnv() []string
	// Changes writes the job's patch to patchFile and describes it. Changes over limits
	// (ChangedFile and Patch) fail with ErrChangesTooLarge and leave no patchFile.
	Changes(ctx context.Context, patchFile string, limits Limits) (*result.Changes, error)
	Remove(ctx context.Context) error
}

// NamedPatch is one job's kept changes: its patch file.
type NamedPatch struct {
	Name string
	File string
}

// Merged is the consolidation of kept patches.
type Merged struct {
	Patch     []byte
	Files     []result.FileChange
	Commit    string
	Applied   []string
	Conflicts []result.Conflict
}

// Merger consolidates patches in order with a three-way merge; a conflicting patch is left
// out whole and reported, never half-applied.
type Merger interface {
	Merge(ctx context.Context, patches []NamedPatch) (*Merged, error)
}

// Engine runs plans. Its fields are set once; Run is safe to call concurrently.
type Engine struct {
	Sandbox    Sandbox
	Workspaces Workspaces
	// Merger may be nil: kept changes are then reported per job but not consolidated.
	Merger   Merger
	Reporter reporters.Reporter
	Logger   *slog.Logger
	// MaxAgents bounds containers running at once across every run of this engine (0: 8).
	MaxAgents int
	// Limits bound each job's changes and log (zero fields: DefaultLimits).
	Limits Limits
	// Workflows, when set, keeps the workflows orchestrators write with their run before any
	// of their jobs start, so a run started again after a crash runs the same workflow instead
	// of asking its orchestrator again.
	Workflows WorkflowStore

	once sync.Once
	sem  chan struct{}
}

// RunOptions are the per-run inputs that are not in the plan.
type RunOptions struct {
	// Dir receives each job's output directory and log: <Dir>/jobs/<job>/{out/,log.txt}.
	Dir string
	// Secrets are the values the runner holds, by name; the plan decides who gets which.
	Secrets map[string]string
	// Ledger, when set, keeps the run's model spend beyond the run, for daily budgets.
	Ledger SpendLedger
}

func (e *Engine) slots() chan struct{} {
	e.once.Do(func() {
		n := e.MaxAgents
		if n <= 0 {
			n = 8
		}
		e.sem = make(chan struct{}, n)
	})
	return e.sem
}

func (e *Engine) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Run executes one planned run to the end and returns its result. The error is reserved for
// failures that leave no meaningful result (the run directory cannot be created); everything
// else, including cancellation, is expressed in the result.
func (e *Engine) Run(ctx context.Context, info *reporters.RunInfo, opts RunOptions) (*result.Run, error) {
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create run directory %s: %w", opts.Dir, err)
	}
	r := &runState{
		e:         e,
		info:      info,
		opts:      opts,
		log:       e.logger().With("run_id", info.ID, "repo", info.Repo, "routine", info.Plan.Routine, "sha", info.Plan.SHA),
		mask:      newRedactor(opts.Secrets),
		nodes:     make(map[string]*nodeState, len(info.Plan.Nodes)),
		workflows: map[string][]*plan.Node{},
		res: &result.Run{
			ID:      info.ID,
			Routine: info.Plan.Routine,
			Repo:    info.Repo,
			SHA:     info.Plan.SHA,
			Started: time.Now(),
		},
	}
	r.followLogs = e.Reporter != nil && reporters.FollowsLogs(e.Reporter)
	r.events = make(chan reporters.Update, 64)
	reported := make(chan struct{})
	go r.deliver(ctx, reported)
	r.emit(reporters.Update{Kind: reporters.RunQueued})

	for _, n := range info.Plan.Nodes {
		r.nodes[n.Agent] = &nodeState{node: n, ready: make(chan struct{}), done: make(chan struct{})}
	}
	// A judge needs the agent it judges even if the YAML did not say so.
	judgeOf := map[string]string{}
	for _, n := range info.Plan.Nodes {
		if n.Judge != "" {
			judgeOf[n.Judge] = n.Agent
		}
	}
	// Run-wide resources (the egress proxy) exist before the first job and go after the last.
	scoped, _ := e.Sandbox.(RunScoped)
	if scoped != nil {
		if err := scoped.BeginRun(ctx, info.ID, RunScope{Plan: info.Plan, Secrets: opts.Secrets, Ledger: opts.Ledger}); err != nil {
			r.res.Error = err.Error()
			scoped = nil
		}
	}
	if r.res.Error == "" {
		var wg sync.WaitGroup
		for _, n := range info.Plan.Nodes {
			ns := r.nodes[n.Agent]
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.runNode(ctx, ns, judgeOf[n.Agent])
			}()
		}
		wg.Wait()
	}
	if scoped != nil {
		scoped.EndRun(ctx, info.ID)
	}

	r.markStarted()
	r.consolidate(ctx)
	r.res.Finished = time.Now()
	r.res.Conclusion = r.conclusion(ctx)
	r.res.Error = r.mask.string(r.res.Error)
	r.res.Report = r.mask.string(Report(r.res))
	r.emit(reporters.Update{Kind: reporters.RunFinished, Result: r.res})
	close(r.events)
	<-reported
	return r.res, nil
}

// runState is one run in progress.
type runState struct {
	e      *Engine
	info   *reporters.RunInfo
	opts   RunOptions
	log    *slog.Logger
	mask   *redactor
	events chan reporters.Update

	// nodesMu guards nodes and workflows, which grow while the run goes on when an
	// orchestrator's workflow starts.
	nodesMu sync.RWMutex
	nodes   map[string]*nodeState
	// workflows holds the nodes of each orchestrator's workflow, by orchestrator.
	workflows map[string][]*plan.Node

	mu  sync.Mutex
	res *result.Run
	// startOnce emits RunStarted before anything else the run does after RunQueued.
	startOnce sync.Once
	// followLogs: the reporter wants each line the jobs print (JobLog updates).
	followLogs bool
}

// markStarted tells reporters the run is under way; only the first call emits.
func (r *runState) markStarted() {
	r.startOnce.Do(func() { r.emit(reporters.Update{Kind: reporters.RunStarted}) })
}

// nodeState is one agent in progress. ready closes when its instances have finished (what
// a judge needs); done closes when its result is final (what dependents need).
type nodeState struct {
	node  *plan.Node
	ready chan struct{}
	done  chan struct{}
	need  plan.NeedResult
	agent *result.Agent
	jobs  []*result.Job
	// budget counts the instances of an orchestrator's workflow against its envelope (nil for
	// the routine's own agents).
	budget *instanceBudget
}

// deliver hands updates to the reporter in order, off the hot path of the jobs.
func (r *runState) deliver(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	// Reporting outlives cancellation: a cancelled run must still conclude its check run.
	rctx := context.WithoutCancel(ctx)
	for u := range r.events {
		if r.e.Reporter == nil {
			continue
		}
		if err := r.e.Reporter.Report(rctx, u); err != nil {
			r.log.Warn("reporter failed", "update", u.Kind, "err", err)
		}
	}
}

func (r *runState) emit(u reporters.Update) {
	u.Run = r.info
	if u.Time.IsZero() {
		u.Time = time.Now()
	}
	r.events <- u
}

func (r *runState) runNode(ctx context.Context, ns *nodeState, judged string) {
	n := ns.node
	log := r.log.With("agent", n.Agent)
	defer close(ns.done)
	for _, need := range n.Needs {
		r.waitFor(ctx, need, need == judged)
	}
	if judged != "" && !contains(n.Needs, judged) {
		r.waitFor(ctx, judged, true)
	}

	r.markStarted()
	st := r.state(n, judged)
	finish := func(res string, msg string) {
		ns.need = plan.NeedResult{Result: res, Outputs: map[string]any{}}
		ns.agent = &result.Agent{Name: n.Agent, Result: res, ContinueOnError: n.ContinueOnError}
		if msg != "" {
			// An agent that never got to run still needs a visible reason.
			j := &result.Job{ID: n.Agent, Agent: n.Agent, Outcome: outcomeFor(res), Error: r.mask.string(msg), Started: time.Now(), Finished: time.Now()}
			ns.jobs = append(ns.jobs, j)
			ns.agent.Jobs = []string{j.ID}
			r.addJob(j)
		}
		r.addAgent(ns.agent)
		close(ns.ready)
		r.emit(reporters.Update{Kind: reporters.AgentFinished, Agent: n.Agent, AgentRes: ns.agent})
	}

	if ctx.Err() != nil {
		finish(plan.ResultCancelled, "")
		return
	}
	ok, err := n.Condition(st)
	if err != nil {
		log.Warn("if: failed to evaluate", "err", err)
		finish(plan.ResultFailure, fmt.Sprintf("if: %v", err))
		return
	}
	if !ok {
		finish(plan.ResultSkipped, "")
		return
	}
	insts, err := n.Expand(st)
	if err != nil {
		finish(plan.ResultFailure, fmt.Sprintf("expand %s: %v", n.Agent, err))
		return
	}
	base, err := r.stageBase(ctx, n)
	if err != nil {
		finish(plan.ResultFailure, fmt.Sprintf("start from the changes of %s: %v", strings.Join(n.Needs, ", "), err))
		return
	}
	r.emit(reporters.Update{Kind: reporters.AgentExpanded, Agent: n.Agent, Instances: insts})
	if ns.budget != nil {
		if err := ns.budget.take(len(insts)); err != nil {
			finish(plan.ResultFailure, err.Error())
			return
		}
	}
	if n.Orchestrate != nil && len(insts) == 1 && r.resumeWorkflow(ctx, ns, insts[0]) {
		r.addAgent(ns.agent)
		close(ns.ready)
		r.emit(reporters.Update{Kind: reporters.AgentFinished, Agent: n.Agent, AgentRes: ns.agent})
		return
	}
	ns.jobs = r.runInstances(ctx, n, insts, base)
	if n.Orchestrate != nil && len(insts) == 1 {
		r.orchestrate(ctx, ns, insts[0], base)
	} else {
		ns.agent, ns.need = aggregate(n, ns.jobs)
	}
	if n.Judge == "" {
		r.addAgent(ns.agent)
		close(ns.ready)
		r.emit(reporters.Update{Kind: reporters.AgentFinished, Agent: n.Agent, AgentRes: ns.agent})
		return
	}
	// The judge reads the replicas' outputs, then its verdict decides this agent.
	close(ns.ready)
	judge := r.node(n.Judge)
	<-judge.done
	ns.agent, ns.need = decideByJudge(n, ns.jobs, judge)
	r.addAgent(ns.agent)
	r.emit(reporters.Update{Kind: reporters.AgentFinished, Agent: n.Agent, AgentRes: ns.agent})
}

func (r *runState) waitFor(ctx context.Context, agent string, readyOnly bool) {
	ns := r.node(agent)
	if ns == nil {
		return
	}
	if readyOnly {
		<-ns.ready
		return
	}
	<-ns.done
}

// state snapshots the results of the node's needs (and the agent it judges).
func (r *runState) state(n *plan.Node, judged string) plan.State {
	st := plan.State{Needs: map[string]plan.NeedResult{}}
	names := append([]string(nil), n.Needs...)
	if judged != "" {
		names = append(names, judged)
	}
	for _, name := range names {
		if ns := r.node(name); ns != nil {
			need := ns.need
			if name == judged {
				need = replicaView(ns.jobs)
			}
			st.Needs[name] = need
		}
	}
	return st
}

func (r *runState) addJob(j *result.Job) {
	r.mu.Lock()
	r.res.Jobs = append(r.res.Jobs, j)
	r.mu.Unlock()
}

func (r *runState) addAgent(a *result.Agent) {
	r.mu.Lock()
	r.res.Agents = append(r.res.Agents, a)
	r.mu.Unlock()
}

// runInstances runs a node's instances with its max-parallel and fail-fast, returning the
// results in instance order. Instances start in instance order: the next one takes the slot
// a finished one frees, so a fail-fast cancellation is seen before that slot is reused.
func (r *runState) runInstances(ctx context.Context, n *plan.Node, insts []*plan.Instance, base string) []*result.Job {
	nctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	limit := n.MaxParallel
	if limit <= 0 || limit > len(insts) {
		limit = len(insts)
	}
	// No more than the engine's slots can run anyway; the bound also keeps the workspaces
	// prepared ahead of a slot to one per node.
	limit = min(limit, cap(r.e.slots()))
	local := make(chan struct{}, max(limit, 1))
	jobs := make([]*result.Job, len(insts))
	var wg sync.WaitGroup
	for i, inst := range insts {
		// The next instance gets ready while the running ones hold every slot.
		var p *prepared
		if nctx.Err() == nil {
			p = r.prepare(nctx, inst, base)
		}
		select {
		case local <- struct{}{}:
		case <-nctx.Done():
		}
		if nctx.Err() != nil {
			r.release(nctx, inst, p)
			jobs[i] = r.cancelledJob(nctx, inst)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-local }()
			j := r.runJob(nctx, inst, p)
			jobs[i] = j
			if n.FailFast && j.Outcome != result.Success && j.Outcome != result.Cancelled && j.Outcome != result.Skipped {
				cancel(fmt.Errorf("fail-fast: %s %s", j.ID, j.Outcome))
			}
		}()
	}
	wg.Wait()
	return jobs
}

// cancelledJob records an instance that never started because its run or node was cancelled.
func (r *runState) cancelledJob(ctx context.Context, inst *plan.Instance) *result.Job {
	now := time.Now()
	j := &result.Job{ID: inst.ID, Agent: inst.Agent, Replica: inst.Replica, Matrix: inst.Matrix,
		Outcome: result.Cancelled, Started: now, Finished: now}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		j.Error = cause.Error()
	}
	r.addJob(j)
	r.emit(reporters.Update{Kind: reporters.JobFinished, Job: j, Instance: inst})
	return j
}

// runJob runs one prepared instance once a slot of the engine is free: container, outputs,
// changes, cleanup.
func (r *runState) runJob(ctx context.Context, inst *plan.Instance, p *prepared) *result.Job {
	sem := r.e.slots()
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
	}
	if ctx.Err() != nil {
		r.release(ctx, inst, p)
		return r.cancelledJob(ctx, inst)
	}
	defer func() { <-sem }()
	j := &result.Job{ID: inst.ID, Agent: inst.Agent, Replica: inst.Replica, Matrix: inst.Matrix}
	defer r.addJob(j)
	j.Started = time.Now()
	r.emit(reporters.Update{Kind: reporters.JobStarted, Instance: inst, Time: j.Started})
	r.execute(ctx, inst, j, p)
	// The one place a job's result is complete and not yet seen by anyone: reporters,
	// dependents and the run's report all read it after this.
	r.mask.job(j)
	if j.Finished.IsZero() {
		j.Finished = time.Now()
	}
	r.log.Info("job finished", "agent", inst.Agent, "job", inst.ID, "outcome", j.Outcome, "exit_code", j.ExitCode, "duration", j.Duration())
	r.emit(reporters.Update{Kind: reporters.JobFinished, Job: j, Instance: inst})
	return j
}

// prepared is an instance made ready to run before a slot is free: its output directory,
// secrets and workspace. fail or cancelled say why it cannot run.
type prepared struct {
	dir, out  string
	secrets   map[string]string
	ws        Workspace
	fail      string
	cancelled bool
}

// prepare does the part of a job that needs no container, so that it overlaps with other
// agents' containers instead of delaying this one's start.
func (r *runState) prepare(ctx context.Context, inst *plan.Instance, base string) *prepared {
	p := &prepared{dir: filepath.Join(r.opts.Dir, "jobs", JobDirName(inst.ID))}
	p.out = filepath.Join(p.dir, "out")
	if err := os.MkdirAll(p.out, 0o755); err != nil {
		p.fail = fmt.Sprintf("create output directory: %v", err)
		return p
	}
	// The container runs as an unprivileged uid that must write its outputs here.
	if err := os.Chmod(p.out, 0o777); err != nil {
		p.fail = fmt.Sprintf("open output directory to the agent: %v", err)
		return p
	}
	if err := os.WriteFile(filepath.Join(p.out, "prompt.md"), []byte(inst.Prompt), 0o644); err != nil {
		p.fail = fmt.Sprintf("write prompt.md: %v", err)
		return p
	}
	var err error
	if p.secrets, err = pickSecrets(inst.Secrets, r.opts.Secrets); err != nil {
		p.fail = err.Error()
		return p
	}
	if p.ws, err = r.e.Workspaces.Create(ctx, r.info.ID, inst.ID, base); err != nil {
		p.cancelled = ctx.Err() != nil
		p.fail = fmt.Sprintf("prepare workspace: %v", err)
	}
	return p
}

// release removes the workspace, also when the run is being cancelled.
func (r *runState) release(ctx context.Context, inst *plan.Instance, p *prepared) {
	if p == nil || p.ws == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := p.ws.Remove(cctx); err != nil {
		r.log.Warn("remove workspace", "job", inst.ID, "err", err)
	}
	p.ws = nil
}

func (r *runState) execute(ctx context.Context, inst *plan.Instance, j *result.Job, p *prepared) {
	fail := func(format string, args ...any) {
		j.Outcome = result.Error
		j.Error = fmt.Sprintf(format, args...)
	}
	defer r.release(ctx, inst, p)
	if p.cancelled {
		j.Outcome = result.Cancelled
		return
	}
	if p.fail != "" {
		fail("%s", p.fail)
		return
	}
	dir, out, ws, secrets := p.dir, p.out, p.ws, p.secrets
	limits := r.e.Limits.forInstance(inst)

	logPath := filepath.Join(dir, "log.txt")
	lf, err := os.Create(logPath)
	if err != nil {
		fail("create log file: %v", err)
		return
	}
	defer lf.Close()
	j.LogPath = logPath
	stored := newCappedLog(lf, limits.Log)
	tail := newTailBuffer(64 << 10)
	capture := newCapBuffer(16 << 20)
	logs := io.MultiWriter(stored, tail, capture)
	var lines *lineWriter
	if r.followLogs {
		lines = newLineWriter(func(line string) {
			r.emit(reporters.Update{Kind: reporters.JobLog, Instance: inst, Line: line})
		})
		logs = io.MultiWriter(logs, lines)
	}

	task := &Task{
		RunID:          r.info.ID,
		Instance:       inst,
		WorkspaceDir:   ws.Path(),
		WorkspaceReady: ws.Ready,
		OutputDir:      out,
		Env:            withWorkspaceEnv(inst.Env, ws.ContainerEnv()),
		Secrets:        secrets,
	}
	if l, ok := ws.Layers(); ok {
		task.WorkspaceLayers = &l
	}
	exit, err := r.e.Sandbox.Run(ctx, task, logs)
	if lines != nil {
		lines.Flush() // a last line without a line break
	}
	j.LogTail = tail.String()
	if cerr := stored.Close(); cerr != nil {
		r.log.Warn("write job log", "job", inst.ID, "err", cerr)
	}
	if err != nil {
		if ctx.Err() != nil {
			j.Outcome = result.Cancelled
			j.Error = err.Error()
			return
		}
		fail("%v", err)
		return
	}
	if exit == nil {
		fail("the sandbox reported no exit for the job (a bug in the sandbox)")
		return
	}
	j.Outcome, j.ExitCode, j.Blocked, j.Metered = exit.Outcome, exit.ExitCode, exit.Blocked, exit.Metered
	if exit.Error != "" {
		j.Error = exit.Error
	}
	if !exit.Started.IsZero() {
		j.Started, j.Finished = exit.Started, exit.Finished
	}
	if n, err := ws.DiskUsage(); err != nil {
		r.log.Warn("measure the workspace's disk use", "job", inst.ID, "err", err)
	} else {
		j.DiskUsage = n
	}
	readOutputs(out, j)
	r.defuseOutputs(inst, out)
	applyPreset(inst.Preset, capture.Bytes(), j)
	if ns := r.node(inst.Agent); ns != nil && ns.node.Changes == config.ChangesKeep && j.Outcome == result.Success {
		ch, err := ws.Changes(context.WithoutCancel(ctx), filepath.Join(dir, "changes.patch"), limits)
		if errors.Is(err, ErrChangesTooLarge) {
			j.Outcome, j.Error = result.Failed, err.Error()
			return
		}
		if err != nil {
			fail("collect changes: %v", err)
			return
		}
		if why, err := r.mask.refuseSecretChangesFile(ch.PatchFile); err != nil {
			fail("check changes for secret values: %v", err)
			return
		} else if why != "" {
			os.Remove(ch.PatchFile)
			j.Outcome, j.Error = result.Failed, why
			return
		}
		j.Changes = ch
	}
}

func withWorkspaceEnv(env map[string]string, extra []string) map[string]string {
	if len(extra) == 0 {
		return env
	}
	out := make(map[string]string, len(env)+len(extra))
	for _, kv := range extra {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	for k, v := range env {
		out[k] = v
	}
	return out
}

func pickSecrets(names []string, values map[string]string) (map[string]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(names))
	var missing []string
	for _, n := range names {
		v, ok := values[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		out[n] = v
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("secrets not provided to the runner: %v (exec: --secret NAME reads the environment; serve: the secrets file)", missing)
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func outcomeFor(res string) result.Outcome {
	switch res {
	case plan.ResultSkipped:
		return result.Skipped
	case plan.ResultCancelled:
		return result.Cancelled
	case plan.ResultSuccess:
		return result.Success
	}
	return result.Error
}
