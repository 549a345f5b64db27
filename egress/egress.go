// Package egress runs the egress proxy (package proxy, `runner proxy`) for one run and talks
// to it over its control channel: the proxy's configuration (its keys among it) goes there
// first, then each job's registration, and the job's refused destinations and spend come back.
// It tells the sandbox what an agent needs: the network to join and its environment (proxy
// variables, model API base URLs pointing at the proxy's key endpoints, placeholder keys).
//
// On Docker (Start, docker.go) it builds the proxy image from the runner's own static
// executable, creates the run's internal network (no route out) and outside network and
// starts the proxy on both; its control channel is the container's standard input and output
// (an attach stream). Elsewhere (a pod on Kubernetes, package sandbox/kube) the proxy dials
// the runner and Controlled speaks the same protocol over that connection.
//
// The real model API keys reach the proxy over its control channel only, so they are not in
// the proxy container's configuration (`docker inspect`, a pod spec), image or files, and
// never in an agent container. Limits: they live in the proxy process's memory, where root on
// its host (or anyone with the Docker socket or a pod's exec rights) can read them, and they
// cross the control channel in clear text when that is plain TCP.
//
// Every Docker object carries the label agentrunner.run=<run id>, so the sandbox's reaper
// (sandbox.(*Docker).Reap) removes a crashed run's proxy container and networks.
package egress

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentrunner/agentrunner/preset"
	"github.com/agentrunner/agentrunner/proxy"
)

// Labels and ports.
const (
	LabelRun  = "agentrunner.run" // mirrors sandbox.LabelRun
	LabelRole = "agentrunner.role"
	RoleProxy = "proxy"

	ProxyPort = 3128 // the forward proxy (HTTPS_PROXY)
	KeysPort  = 8081 // the key endpoints (base URLs)

	// Placeholder is the value of an agent's key variables: CLIs refuse to start without a
	// key, and the proxy replaces whatever they send with the real one.
	Placeholder = "agentrunner-placeholder-key"
)

// Key is one model API key the proxy adds on the agents' behalf.
type Key struct {
	// API describes the API (from preset.(*Preset).APIs). Tests point API.Upstream at a test
	// server; production keeps the real HTTPS base URL.
	API preset.API
	// Value is the real key.
	Value string
}

// Connector is one remote MCP connector the proxy stands in for.
type Connector struct {
	Name string
	// URL is the streamable-HTTP MCP endpoint; Secret, when set, is sent to it as a bearer
	// token. Tools, when set, are the only tools agents may call through it.
	URL    string
	Secret string
	Tools  []string
}

// ConnectorProvider is the key endpoint path segment of connector name.
func ConnectorProvider(name string) string { return "mcp-" + name }

// RunSpec describes one run's egress.
type RunSpec struct {
	RunID string
	// Keys are the model API keys of the run, at most one per provider.
	Keys []Key
	// Executable is the static runner executable for the proxy image; "" is this process's
	// own executable. Image, when set, is used as is instead.
	Executable string
	Image      string
	// Owner labels the networks and the proxy with who made them (sandbox.OwnerLabels), so a
	// start-up sweep tells them from another owner's.
	Owner  map[string]string
	Logger *slog.Logger
	// StartTimeout bounds waiting for the proxy to be ready (default 30s).
	StartTimeout time.Duration
	// Connectors are the run's remote MCP connectors: the proxy serves each at a key endpoint
	// of its own and adds its credential there.
	Connectors []Connector
	// Budget caps what the run's model calls through the proxy cost, in US dollars (0: none);
	// Prices price them (the proxy's defaults when empty).
	Budget float64
	Prices proxy.Prices

	// TestAllowOutside adds the outside network's subnet to the proxy's address filter, so
	// tests can stand a fake API up there; testOnly widens the filter further (this
	// package's tests). Only a runner built with the agentrunner_testonly tag accepts either:
	// a production proxy refuses to start with them.
	TestAllowOutside bool
	// TestAllowPrefixes are CIDRs the proxy's address filter lets through, for a test's fake
	// upstream on a private network it names itself (Kubernetes tests); the same build rule.
	TestAllowPrefixes []string
	testOnly          *proxy.TestOnly
}

// Egress is one run's running proxy. Its methods are safe for concurrent use.
type Egress struct {
	log      *slog.Logger
	runID    string
	internal string // Docker's network names ("" elsewhere)
	outside  string
	proxyIP  string // where agents reach it
	keys     map[preset.Provider]bool
	remote   map[string]bool // remote connectors by name

	ctl     io.Writer // the proxy's control input
	replies chan proxy.Reply
	dead    chan struct{} // closed when the proxy's control output ends
	ctlMu   sync.Mutex
	broken  error

	// stop ends the proxy and removes what it runs in.
	stop      func(context.Context) error
	closeOnce sync.Once
	closeErr  error
}

// AgentConfig is what one agent container needs.
type AgentConfig struct {
	// Network is the Docker network to join (sandbox.Network.DockerNetwork).
	Network string
	// Env goes into the container (sandbox.Network.ProxyEnv): HTTPS_PROXY, HTTP_PROXY,
	// https_proxy, http_proxy, NO_PROXY, no_proxy, each API's base-URL variables and
	// placeholder keys.
	Env map[string]string
	// BaseURL maps each served provider to its key endpoint, for preset.Options.BaseURL.
	BaseURL map[preset.Provider]string
	// MCP maps each of the agent's remote connectors to the proxy's endpoint for it.
	MCP map[string]string
}

// Agent is one job asking for egress.
type Agent struct {
	JobID string
	// Allow is the job's allow list (host:port, *.domain:port).
	Allow []string
	// APIs are the model APIs the agent's preset calls; those with a Key in the RunSpec are
	// served by the key endpoints.
	APIs []preset.API
	// Connectors are the remote connectors (RunSpec.Connectors) the agent may use.
	Connectors []string
	// Direct are addresses on the run's internal network the agent reaches without the proxy
	// (its local connectors' sidecars), added to NO_PROXY.
	Direct []string
}

// newEgress checks spec and makes the proxy's configuration from it, and the Egress that
// will control the proxy once it runs.
func newEgress(spec *RunSpec) (*Egress, proxy.FileConfig, error) {
	if spec.RunID == "" {
		return nil, proxy.FileConfig{}, errors.New("start egress proxy: empty run id")
	}
	if spec.Logger == nil {
		spec.Logger = slog.New(slog.DiscardHandler)
	}
	if spec.StartTimeout <= 0 {
		spec.StartTimeout = 30 * time.Second
	}
	fc := proxy.FileConfig{Listen: fmt.Sprintf(":%d", ProxyPort), KeysListen: fmt.Sprintf(":%d", KeysPort), Budget: spec.Budget, Prices: spec.Prices}
	keys := map[preset.Provider]bool{}
	for _, k := range spec.Keys {
		if keys[k.API.Provider] {
			return nil, fc, fmt.Errorf("start egress proxy for run %s: two keys for provider %s", spec.RunID, k.API.Provider)
		}
		keys[k.API.Provider] = true
		fc.Keys = append(fc.Keys, proxy.KeyEndpoint{Provider: string(k.API.Provider), Upstream: k.API.Upstream, Header: k.API.KeyHeader, Key: k.Value})
	}
	remote := map[string]bool{}
	for _, c := range spec.Connectors {
		if remote[c.Name] {
			return nil, fc, fmt.Errorf("start egress proxy for run %s: two connectors named %s", spec.RunID, c.Name)
		}
		remote[c.Name] = true
		fc.Keys = append(fc.Keys, proxy.KeyEndpoint{Provider: ConnectorProvider(c.Name), Upstream: c.URL, Header: "authorization",
			Key: c.Secret, Connector: true, Tools: c.Tools})
	}
	if spec.testOnly != nil || len(spec.TestAllowPrefixes) > 0 {
		t := proxy.TestOnly{}
		if spec.testOnly != nil {
			t = *spec.testOnly
		}
		t.AllowPrefixes = append(t.AllowPrefixes, spec.TestAllowPrefixes...)
		fc.TestOnly = &t
	}
	e := &Egress{
		runID: spec.RunID, keys: keys, remote: remote,
		log:     spec.Logger.With("run_id", spec.RunID, "component", "egress"),
		replies: make(chan proxy.Reply, 1), dead: make(chan struct{}),
		stop: func(context.Context) error { return nil },
	}
	return e, fc, nil
}

// Controlled makes the Egress of a proxy that runs elsewhere (a pod) and has dialed the
// runner: conn is its control channel, proxyIP where agents reach it, and stop ends it and
// removes what it runs in (Close calls it). Controlled sends the proxy its configuration and
// waits until it is ready; on error it closes conn and calls stop.
func Controlled(ctx context.Context, spec RunSpec, conn io.ReadWriteCloser, proxyIP string, stop func(context.Context) error) (_ *Egress, err error) {
	e, fc, err := newEgress(&spec)
	if err != nil {
		conn.Close()
		return nil, errors.Join(err, stop(context.WithoutCancel(ctx)))
	}
	e.proxyIP = proxyIP
	e.stop = func(ctx context.Context) error {
		conn.Close() // the end of its input is the proxy's signal to stop
		return stop(ctx)
	}
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = e.Close(cctx)
		}
	}()
	if err := e.begin(ctx, conn, conn, fc, spec.StartTimeout); err != nil {
		return nil, fmt.Errorf("egress proxy of run %s: %w", spec.RunID, err)
	}
	return e, nil
}

// begin sends the proxy its configuration on ctl and waits for its ready reply on replies.
func (e *Egress) begin(ctx context.Context, ctl io.Writer, replies io.Reader, fc proxy.FileConfig, timeout time.Duration) error {
	e.ctl = ctl
	go e.readReplies(replies)
	if err := json.NewEncoder(ctl).Encode(fc); err != nil {
		return fmt.Errorf("send the proxy its configuration: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rep, err := e.reply(wctx)
	if err != nil {
		return fmt.Errorf("wait for the proxy to be ready: %w", err)
	}
	if !rep.OK || !rep.Ready {
		return fmt.Errorf("the proxy refused its configuration: %s", rep.Error)
	}
	return nil
}

// readReplies feeds the control replies (the proxy's output, one JSON object per line).
func (e *Egress) readReplies(r io.Reader) {
	defer close(e.dead)
	dec := json.NewDecoder(r)
	for {
		var rep proxy.Reply
		if err := dec.Decode(&rep); err != nil {
			return
		}
		e.replies <- rep
	}
}

// RelayLogs copies the JSON log lines a runner process in a container writes (its stderr,
// slog's JSON handler) into log, each message prefixed, until r ends. Lines that are not
// JSON are logged as they are.
func RelayLogs(log *slog.Logger, prefix string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			log.Info(prefix + sc.Text())
			continue
		}
		level := slog.LevelInfo
		if s, _ := m["level"].(string); s != "" {
			_ = level.UnmarshalText([]byte(s))
		}
		msg, _ := m["msg"].(string)
		delete(m, "level")
		delete(m, "msg")
		delete(m, "time")
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		attrs := make([]slog.Attr, 0, len(keys))
		for _, k := range keys {
			attrs = append(attrs, slog.Any(k, m[k]))
		}
		log.LogAttrs(context.Background(), level, prefix+msg, attrs...)
	}
}

func (e *Egress) reply(ctx context.Context) (proxy.Reply, error) {
	select {
	case rep := <-e.replies:
		return rep, nil
	case <-e.dead:
		select {
		case rep := <-e.replies:
			return rep, nil
		default:
		}
		return proxy.Reply{}, errors.New("the proxy stopped")
	case <-ctx.Done():
		return proxy.Reply{}, ctx.Err()
	}
}

// call sends one control request and waits for its reply. A request whose reply did not come
// leaves the channel out of step, so the Egress is then broken for good.
func (e *Egress) call(ctx context.Context, req proxy.Request) (proxy.Reply, error) {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	if e.broken != nil {
		return proxy.Reply{}, e.broken
	}
	if err := json.NewEncoder(e.ctl).Encode(req); err != nil {
		e.broken = fmt.Errorf("egress proxy of run %s: control channel: %w", e.runID, err)
		return proxy.Reply{}, e.broken
	}
	rep, err := e.reply(ctx)
	if err != nil {
		e.broken = fmt.Errorf("egress proxy of run %s: no reply to %s: %w", e.runID, req.Op, err)
		return proxy.Reply{}, e.broken
	}
	if !rep.OK {
		return rep, fmt.Errorf("egress proxy of run %s: %s: %s", e.runID, req.Op, rep.Error)
	}
	return rep, nil
}

// Networks returns the run's internal Docker network (agents) and outside network (the
// proxy's way out); both are empty for a proxy that runs elsewhere.
func (e *Egress) Networks() (internal, outside string) { return e.internal, e.outside }

// ProxyIP is the proxy's address where agents reach it (on Docker, the internal network).
func (e *Egress) ProxyIP() string { return e.proxyIP }

// AgentConfig registers a job with the proxy (its allow list and the key endpoints it may use)
// and returns what its container needs. Agents are identified by a per-job token in their
// proxy URL and base URLs.
func (e *Egress) AgentConfig(ctx context.Context, a Agent) (*AgentConfig, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("egress for job %q: make token: %w", a.JobID, err)
	}
	tok := hex.EncodeToString(b)
	var provs []string
	served := map[preset.Provider]bool{}
	for _, api := range a.APIs {
		if e.keys[api.Provider] && !served[api.Provider] {
			served[api.Provider] = true
			provs = append(provs, string(api.Provider))
		}
	}
	for _, c := range a.Connectors {
		if !e.remote[c] {
			return nil, fmt.Errorf("egress for job %q: the run has no remote connector %s", a.JobID, c)
		}
		provs = append(provs, ConnectorProvider(c))
	}
	if _, err := e.call(ctx, proxy.Request{Op: "register", Job: &proxy.Job{ID: a.JobID, Token: tok, Allow: a.Allow, Providers: provs}}); err != nil {
		return nil, fmt.Errorf("egress for job %q: %w", a.JobID, err)
	}
	proxyURL := fmt.Sprintf("http://%s:x@%s:%d", tok, e.proxyIP, ProxyPort)
	noProxy := strings.Join(append([]string{e.proxyIP, "localhost", "127.0.0.1", "::1"}, a.Direct...), ",")
	cfg := &AgentConfig{
		Network: e.internal,
		Env: map[string]string{
			"HTTPS_PROXY": proxyURL, "https_proxy": proxyURL,
			"HTTP_PROXY": proxyURL, "http_proxy": proxyURL,
			"NO_PROXY": noProxy, "no_proxy": noProxy,
		},
		BaseURL: map[preset.Provider]string{},
	}
	for _, c := range a.Connectors {
		if cfg.MCP == nil {
			cfg.MCP = map[string]string{}
		}
		cfg.MCP[c] = fmt.Sprintf("http://%s:%d/%s/%s", e.proxyIP, KeysPort, tok, ConnectorProvider(c))
	}
	for _, api := range a.APIs {
		if !served[api.Provider] {
			continue
		}
		u := fmt.Sprintf("http://%s:%d/%s/%s", e.proxyIP, KeysPort, tok, api.Provider)
		cfg.BaseURL[api.Provider] = u
		for _, v := range api.BaseURLEnv {
			cfg.Env[v] = u
		}
		for _, v := range api.KeyEnv {
			cfg.Env[v] = Placeholder
		}
	}
	return cfg, nil
}

// Blocked returns the job's distinct refused destinations, "host:port (reason)".
func (e *Egress) Blocked(ctx context.Context, jobID string) ([]string, error) {
	rep, err := e.call(ctx, proxy.Request{Op: "blocked", JobID: jobID})
	if err != nil {
		return nil, err
	}
	return rep.Blocked, nil
}

// Spend returns what the job's model calls through the proxy cost, and the run's in all.
func (e *Egress) Spend(ctx context.Context, jobID string) (proxy.Spend, float64, error) {
	rep, err := e.call(ctx, proxy.Request{Op: "spend", JobID: jobID})
	if err != nil || rep.Spend == nil {
		return proxy.Spend{}, 0, err
	}
	return *rep.Spend, rep.RunUSD, nil
}

// SetBudget caps the run's model spend at usd, or lifts the cap (capped false).
func (e *Egress) SetBudget(ctx context.Context, usd float64, capped bool) error {
	_, err := e.call(ctx, proxy.Request{Op: "budget", Budget: usd, Uncapped: !capped})
	return err
}

// Attempts returns the job's recent attempts as the proxy recorded them.
func (e *Egress) Attempts(ctx context.Context, jobID string) ([]proxy.Attempt, error) {
	rep, err := e.call(ctx, proxy.Request{Op: "attempts", JobID: jobID})
	if err != nil {
		return nil, err
	}
	return rep.Attempts, nil
}

// Close stops the proxy and removes what it runs in (on Docker its container and the run's
// networks; agents must be gone first, a network with containers cannot be removed). It is
// safe to call twice; later calls return the first result. Call it with a context that is
// not the cancelled run's (e.g. context.WithoutCancel plus a timeout).
func (e *Egress) Close(ctx context.Context) error {
	e.closeOnce.Do(func() {
		e.closeErr = e.stop(ctx)
		if e.closeErr == nil {
			e.log.Info("egress proxy removed")
		}
	})
	return e.closeErr
}
