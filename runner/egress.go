package runner

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/docker/docker/client"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/connectors"
	"github.com/agentrunner/agentrunner/egress"
	"github.com/agentrunner/agentrunner/preset"
	"github.com/agentrunner/agentrunner/proxy"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/sandbox"
)

// RunScoped is implemented by sandboxes that hold resources for a whole run (the egress
// proxy and its networks). The engine calls BeginRun before the first job and EndRun after
// the last container is gone, also when the run fails or is cancelled.
type RunScoped interface {
	BeginRun(ctx context.Context, runID string, s RunScope) error
	EndRun(ctx context.Context, runID string)
}

// RunScope is what a run-scoped sandbox is given at the run's start.
type RunScope struct {
	Plan    *plan.Run
	Secrets map[string]string // the values the runner holds, by name
	// Ledger, when set, carries the run's model spend past the run: daily budgets, held
	// across a fleet.
	Ledger SpendLedger
}

// SpendLedger keeps model spend beyond one run (the daemon's store).
type SpendLedger interface {
	// Record adds usd, what the run spent since the last call, and returns how much more it
	// may spend before a daily budget is spent (math.Inf(1) when none applies).
	Record(ctx context.Context, usd float64) (left float64, err error)
}

// ProxyHost starts a run's egress proxy where the run's agents run, and its control channel.
type ProxyHost interface {
	StartProxy(ctx context.Context, spec egress.RunSpec) (*egress.Egress, error)
}

// Egress starts, per run that has allow-listed agents, the runner's egress proxy: agents sit
// on an internal network whose only way out is the proxy, which enforces each agent's allow
// list and adds the model API keys outside the sandbox.
type Egress struct {
	// Client is the Docker engine the proxy, its networks and the local connectors' sidecars
	// run on, unless Host is set.
	Client client.APIClient
	// Host, when set, starts the proxy instead (a pod on Kubernetes: package sandbox/kube).
	// Local connectors need Client: without it they are not offered.
	Host ProxyHost
	// Executable is the static runner binary the proxy image is built from ("" = this one).
	Executable string
	// Owner labels the proxy and its networks (sandbox.OwnerLabels).
	Owner  map[string]string
	Logger *slog.Logger
	// Prices price model calls for budgets (the proxy's defaults when nil).
	Prices proxy.Prices

	// Upstreams moves a model API to another base URL (a company's model gateway, or a test's
	// fake): the proxy forwards the provider's calls there, still through its address filter.
	Upstreams map[preset.Provider]string
	// TestAllowOutside lets the proxy reach the run's outside network, where a test stands its
	// fake model API up. Only an Executable built with the agentrunner_testonly tag accepts it:
	// a production proxy refuses to start.
	TestAllowOutside bool

	mu   sync.Mutex
	runs map[string]*egressRun

	engineChecked sync.Once
}

type egressRun struct {
	eg *egress.Egress
	// conns are the run's local connectors' sidecars (nil without any); remote names the
	// connectors the proxy serves; unavailable says why a connector of the run is not.
	conns       *connectors.Set
	remote      map[string]bool
	unavailable map[string]string
	served      map[string]bool // secret names the proxy adds, never handed to containers
	budget      float64

	// With a ledger, the run's spend is carried to it every ledgerSync and the proxy's cap
	// follows what the daily budgets leave.
	ledger   SpendLedger
	recorded float64 // the run's spend the ledger has
	stop     chan struct{}
	synced   chan struct{}
}

// ledgerSync is how often a run's model spend is carried to the ledger: how far past a daily
// budget the runs of a fleet can go together.
const ledgerSync = 2 * time.Second

// needsEgress reports whether any agent of the run is allow-listed. The network mode is a
// property of the agent, so a dynamic node's preview tells the truth.
func needsEgress(p *plan.Run) bool {
	for _, n := range p.Nodes {
		for _, in := range n.Instances {
			if in.Network.Mode == config.NetworkAllow {
				return true
			}
		}
	}
	return false
}

// apisOf lists the model APIs the run's agents call, once per provider.
func apisOf(p *plan.Run) []preset.API {
	seen := map[preset.Provider]bool{}
	var out []preset.API
	for _, n := range p.Nodes {
		for _, in := range n.Instances {
			for _, api := range instanceAPIs(in) {
				if !seen[api.Provider] {
					seen[api.Provider] = true
					out = append(out, api)
				}
			}
		}
	}
	return out
}

// instanceAPIs is the model APIs in's preset calls with its `with:` options (in.APIs, which
// planning resolved). A preset's APIs without options cover every provider it can call.
func instanceAPIs(in *plan.Instance) []preset.API {
	ps, ok := preset.Get(in.Preset)
	if !ok {
		return nil
	}
	var out []preset.API
	for _, api := range ps.APIs(nil) {
		if slices.Contains(in.APIs, string(api.Provider)) {
			out = append(out, api)
		}
	}
	return out
}

// BeginRun starts the run's proxy when an agent needs one, with the keys the run holds.
func (e *Egress) BeginRun(ctx context.Context, runID string, scope RunScope) error {
	p, secrets := scope.Plan, scope.Secrets
	if !needsEgress(p) {
		return nil
	}
	if e.Client != nil {
		e.engineChecked.Do(func() {
			if err := egress.CheckEngineDNS(ctx, e.Client); err != nil && e.Logger != nil {
				e.Logger.Warn("docker engine and allow-listed agents", "err", err)
			}
		})
	}
	var keys []egress.Key
	served := map[string]bool{}
	for _, api := range apisOf(p) {
		if v, ok := secrets[api.Secret]; ok && api.Secret != "" && len(api.BaseURLEnv) > 0 {
			if u := e.Upstreams[api.Provider]; u != "" {
				api.Upstream = u
			}
			keys = append(keys, egress.Key{API: api, Value: v})
			served[api.Secret] = true
			for _, k := range api.KeyEnv {
				served[k] = true
			}
		}
	}
	r := &egressRun{served: served, budget: p.Budget, ledger: scope.Ledger, remote: map[string]bool{}, unavailable: map[string]string{}}
	remote, locals := r.splitConnectors(p, secrets)
	if e.Client == nil {
		for _, c := range locals {
			r.unavailable[c.Name] = "a local connector runs as a sidecar container on a Docker host; this runner has none (give the connector a url:)"
		}
		locals = nil
	}
	spec := egress.RunSpec{RunID: runID, Keys: keys, Executable: e.Executable, Owner: e.Owner, Logger: e.Logger,
		Budget: p.Budget, Prices: e.Prices, Connectors: remote, TestAllowOutside: e.TestAllowOutside}
	var eg *egress.Egress
	var err error
	if e.Host != nil {
		eg, err = e.Host.StartProxy(ctx, spec)
	} else {
		eg, err = egress.Start(ctx, e.Client, spec)
	}
	if err != nil {
		return fmt.Errorf("start the egress proxy for allow-listed agents: %w", err)
	}
	r.eg = eg
	if len(locals) > 0 {
		if r.conns, err = e.startConnectors(ctx, runID, eg, locals, secrets); err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = eg.Close(cctx)
			return err
		}
	}
	for name, why := range r.unavailable {
		if e.Logger != nil {
			e.Logger.Warn("connector not available to the run", "run_id", runID, "connector", name, "why", why)
		}
	}
	e.mu.Lock()
	if e.runs == nil {
		e.runs = map[string]*egressRun{}
	}
	e.runs[runID] = r
	e.mu.Unlock()
	if r.ledger != nil {
		// Before the first agent: a daily budget already spent refuses its first call.
		e.syncLedger(ctx, runID, r)
		r.stop, r.synced = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(r.synced)
			t := time.NewTicker(ledgerSync)
			defer t.Stop()
			for {
				select {
				case <-r.stop:
					return
				case <-t.C:
					e.syncLedger(context.WithoutCancel(ctx), runID, r)
				}
			}
		}()
	}
	return nil
}

// spendCap is the proxy's cap on a run: its own budget (0: none), or what it has spent plus
// what the daily budgets leave, whichever is lower; capped false lifts the cap.
func spendCap(runBudget, spent, left float64) (limit float64, capped bool) {
	limit, capped = runBudget, runBudget > 0
	if !math.IsInf(left, 1) && (!capped || spent+left < limit) {
		limit, capped = spent+max(left, 0), true
	}
	return limit, capped
}

// syncLedger carries the run's new spend to the ledger and sets the proxy's cap to what the
// run's own budget and the daily budgets leave.
func (e *Egress) syncLedger(ctx context.Context, runID string, r *egressRun) {
	_, run, err := r.eg.Spend(ctx, "")
	if err == nil {
		var left float64
		left, err = r.ledger.Record(ctx, run-r.recorded)
		if err == nil {
			r.recorded = run
			limit, capped := spendCap(r.budget, run, left)
			err = r.eg.SetBudget(ctx, limit, capped)
		}
	}
	if err != nil && e.Logger != nil {
		e.Logger.Warn("carry the run's model spend to the daily budgets", "run_id", runID, "err", err)
	}
}

// EndRun removes the run's proxy and networks.
func (e *Egress) EndRun(ctx context.Context, runID string) {
	e.mu.Lock()
	r := e.runs[runID]
	delete(e.runs, runID)
	e.mu.Unlock()
	if r == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if r.stop != nil {
		close(r.stop)
		<-r.synced
		e.syncLedger(cctx, runID, r) // the last calls count too
	}
	if r.conns != nil {
		if err := r.conns.Close(cctx); err != nil && e.Logger != nil {
			e.Logger.Warn("remove connector sidecars", "run_id", runID, "err", err)
		}
	}
	if err := r.eg.Close(cctx); err != nil && e.Logger != nil {
		e.Logger.Warn("remove egress proxy", "run_id", runID, "err", err)
	}
}

func (e *Egress) run(runID string) *egressRun {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[runID]
}

// joined is what a job needs to run behind its run's proxy.
type joined struct {
	network sandbox.Network
	served  map[string]bool            // secrets the proxy adds, so the container must not get them
	baseURL map[preset.Provider]string // the proxy's key endpoints, for CLIs that take them as flags
	mcp     []preset.MCPServer         // the job's connectors as it reaches them
	// unavailable are the job's connectors the run could not offer, with why.
	unavailable []string
}

// join registers a job with its run's proxy: the network it joins, the env that routes it
// through the proxy, and the secrets it must not receive because the proxy adds them.
func (e *Egress) join(ctx context.Context, t *Task) (joined, error) {
	r := e.run(t.RunID)
	if r == nil {
		return joined{}, fmt.Errorf("job %s: allow-listed network but the run has no egress proxy", t.Instance.ID)
	}
	var remote, direct, unavailable []string
	for _, name := range t.Instance.Connectors {
		switch {
		case r.unavailable[name] != "":
			unavailable = append(unavailable, name+": "+r.unavailable[name])
		case r.remote[name]:
			remote = append(remote, name)
		case r.conns != nil && r.conns.IP(name) != "":
			direct = append(direct, r.conns.IP(name)) // a map lookup under a lock, not Docker
		default:
			unavailable = append(unavailable, name+": the run did not start it")
		}
	}
	cfg, err := r.eg.AgentConfig(ctx, egress.Agent{JobID: t.Instance.ID, Allow: t.Instance.Network.Allow, APIs: instanceAPIs(t.Instance),
		Connectors: remote, Direct: direct})
	if err != nil {
		return joined{}, err
	}
	j := joined{
		network: sandbox.Network{Mode: sandbox.NetworkAllow, Allow: t.Instance.Network.Allow,
			DockerNetwork: cfg.Network, ProxyEnv: cfg.Env, Proxy: r.eg.ProxyIP()},
		served:      r.served,
		baseURL:     cfg.BaseURL,
		unavailable: unavailable,
	}
	for _, name := range t.Instance.Connectors {
		u := cfg.MCP[name]
		if u == "" && r.conns != nil {
			u = r.conns.URL(name)
		}
		if u != "" {
			j.mcp = append(j.mcp, preset.MCPServer{Name: name, URL: u})
		}
	}
	return j, nil
}

func (e *Egress) blocked(ctx context.Context, runID, jobID string) []string {
	r := e.run(runID)
	if r == nil {
		return nil
	}
	b, err := r.eg.Blocked(context.WithoutCancel(ctx), jobID)
	if err != nil && e.Logger != nil {
		e.Logger.Warn("read refused destinations", "run_id", runID, "job", jobID, "err", err)
	}
	return b
}

// spend is what the job's model calls through its run's proxy cost (nil without a proxy, or
// when the job made none).
func (e *Egress) spend(ctx context.Context, runID, jobID string) *result.Metered {
	r := e.run(runID)
	if r == nil {
		return nil
	}
	sp, run, err := r.eg.Spend(context.WithoutCancel(ctx), jobID)
	if err != nil {
		if e.Logger != nil {
			e.Logger.Warn("read the job's model spend", "run_id", runID, "job", jobID, "err", err)
		}
		return nil
	}
	if sp.Calls == 0 && sp.Refused == 0 {
		return nil
	}
	return &result.Metered{USD: sp.USD, Calls: sp.Calls, InputTokens: sp.InputTokens, OutputTokens: sp.OutputTokens,
		Unpriced: sp.Unpriced, Refused: sp.Refused, RunUSD: run, Budget: r.budget}
}

// withoutServed drops the keys the proxy adds from what the container receives, unless the
// agent asked for them by name.
func withoutServed(secrets map[string]string, keySecrets []string, served map[string]bool) map[string]string {
	if len(served) == 0 {
		return secrets
	}
	out := make(map[string]string, len(secrets))
	for k, v := range secrets {
		if !served[k] || !slices.Contains(keySecrets, k) {
			out[k] = v
		}
	}
	return out
}
