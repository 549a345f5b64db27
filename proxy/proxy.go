package proxy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Resolver looks names up; *net.Resolver implements it. Tests inject their own.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config configures a Server. The zero value (plus Register calls) is a working proxy with no
// key endpoints.
type Config struct {
	Logger *slog.Logger
	// Resolver resolves destination names; nil means net.DefaultResolver.
	Resolver Resolver
	// DialTimeout bounds one TCP connect (default 10s).
	DialTimeout time.Duration
	// Keys are the key endpoints, one per provider.
	Keys []KeyEndpoint
	// MaxAttempts is how many attempts per job are kept in memory (default 1000); refused
	// destinations are always kept for Blocked.
	MaxAttempts int
	// Budget caps what the run's model calls through the key endpoints may cost, in US
	// dollars (0: no cap). Once it is spent, further calls are refused (KindBudget).
	Budget float64
	// Prices price the calls (DefaultPrices when nil).
	Prices Prices

	// testAllow and testHosts widen the address filter and the resolver; only tests set them
	// (this package's tests directly, other tests through TestOnlyAllow in tagged builds).
	testAllow []netip.Prefix
	testHosts map[string][]netip.Addr
	// noMeter turns the metering of model calls off: the benchmark's baseline.
	noMeter bool
}

// KeyEndpoint is one model API the key endpoints stand in for.
type KeyEndpoint struct {
	// Provider is the path segment: /<token>/<provider>/... (e.g. "anthropic").
	Provider string `json:"provider"`
	// Upstream is the real base URL, e.g. https://api.anthropic.com or
	// https://api.openai.com/v1; the request path below the provider segment is appended.
	Upstream string `json:"upstream"`
	// Header is how the API takes the key: "authorization" sends `Authorization: Bearer
	// <key>`, any other name sends `<Header>: <key>` (x-api-key, x-goog-api-key).
	Header string `json:"header"`
	// Key is the real key. It never leaves the proxy except towards Upstream.
	Key string `json:"key"`
	// Connector marks a remote MCP connector's endpoint rather than a model API's: its calls
	// are neither metered nor refused for the budget, and Upstream is the endpoint's whole
	// URL. Tools, when set, are the only tools an agent may call through it (see mcpGuard).
	Connector bool     `json:"connector,omitempty"`
	Tools     []string `json:"tools,omitempty"`
}

// Job is one agent the proxy serves.
type Job struct {
	// ID names the job in logs and Blocked (e.g. "audit[3]").
	ID string `json:"id"`
	// Token is the agent's credential; Register generates one when empty. At least 16
	// characters.
	Token string `json:"token,omitempty"`
	// Allow is the job's allow list (see Allow).
	Allow []string `json:"allow,omitempty"`
	// Providers are the key endpoints the job may use.
	Providers []string `json:"providers,omitempty"`
}

type job struct {
	id        string
	allow     *Allow
	providers map[string]bool
}

// Server is the proxy. Its handlers are safe for concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	resolver Resolver
	keys     map[string]*keyRoute

	mu   sync.RWMutex
	jobs map[string]*job // by token

	rec recorder

	spendMu sync.Mutex
	spent   float64
	spends  map[string]*Spend // by job id
	// capped says budget holds: Config.Budget at first, then what SetBudget says.
	capped bool
	budget float64

	forward *httputil.ReverseProxy
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 1000
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		resolver: cfg.Resolver,
		keys:     map[string]*keyRoute{},
		jobs:     map[string]*job{},
		rec:      recorder{max: cfg.MaxAttempts, jobs: map[string]*jobLog{}},
		spends:   map[string]*Spend{},
	}
	if s.cfg.Prices == nil {
		s.cfg.Prices = DefaultPrices
	}
	s.capped, s.budget = cfg.Budget > 0, cfg.Budget
	if s.resolver == nil {
		s.resolver = net.DefaultResolver
	}
	for _, k := range cfg.Keys {
		kr, err := s.newKeyRoute(k)
		if err != nil {
			return nil, err
		}
		if _, dup := s.keys[k.Provider]; dup {
			return nil, fmt.Errorf("key endpoint %q is configured twice", k.Provider)
		}
		s.keys[k.Provider] = kr
	}
	s.forward = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = pr.In.URL
			pr.Out.Host = pr.In.Host
		},
		Transport:     s.transport(),
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "agentrunner proxy: "+r.URL.Host+": "+err.Error(), http.StatusBadGateway)
		},
	}
	return s, nil
}

// transport dials only the addresses the handler checked (carried in the request context),
// so a name is never resolved twice.
func (s *Server) transport() *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			addrs, _ := ctx.Value(checkedKey{}).([]netip.AddrPort)
			if len(addrs) == 0 {
				return nil, errors.New("no checked address (internal error)")
			}
			return s.dialAny(ctx, addrs)
		},
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 5 * time.Minute,
	}
}

type checkedKey struct{}

// Register adds a job and returns its token.
func (s *Server) Register(j Job) (string, error) {
	if j.ID == "" {
		return "", errors.New("register job: empty id")
	}
	allow, err := ParseAllow(j.Allow)
	if err != nil {
		return "", fmt.Errorf("register job %q: %w", j.ID, err)
	}
	if j.Token == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("register job %q: make token: %w", j.ID, err)
		}
		j.Token = hex.EncodeToString(b)
	}
	if len(j.Token) < 16 || strings.ContainsAny(j.Token, ":/@ ") {
		return "", fmt.Errorf("register job %q: token must be at least 16 characters without ':', '/', '@' or spaces", j.ID)
	}
	provs := map[string]bool{}
	for _, p := range j.Providers {
		if _, ok := s.keys[p]; !ok {
			return "", fmt.Errorf("register job %q: no key endpoint for provider %q", j.ID, p)
		}
		provs[p] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.jobs[j.Token]; ok && old.id != j.ID {
		return "", fmt.Errorf("register job %q: token already belongs to another job", j.ID)
	}
	s.jobs[j.Token] = &job{id: j.ID, allow: allow, providers: provs}
	return j.Token, nil
}

func (s *Server) jobByToken(tok string) *job {
	if tok == "" {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	// A map lookup by a secret is not constant-time, but the token only attributes and
	// authorises an agent of the same run on an internal network; a constant-time scan would
	// cost O(jobs) per request.
	return s.jobs[tok]
}

// ProxyHandler is the forward proxy (CONNECT and absolute-form plain HTTP).
func (s *Server) ProxyHandler() http.Handler { return http.HandlerFunc(s.serveProxy) }

func proxyToken(r *http.Request) string {
	v := r.Header.Get("Proxy-Authorization")
	enc, ok := strings.CutPrefix(v, "Basic ")
	if !ok {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return ""
	}
	user, _, _ := strings.Cut(string(raw), ":")
	return user
}

func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request) {
	kind := r.Method
	var host string
	var port int
	var err error
	switch {
	case r.Method == http.MethodConnect:
		host, port, err = splitHostPort(r.Host, 0)
	case r.URL.IsAbs() && r.URL.Scheme == "http":
		host, port, err = splitHostPort(r.URL.Host, 80)
	case r.URL.IsAbs():
		err = fmt.Errorf("scheme %q is not proxied in plain form; use CONNECT (HTTPS_PROXY)", r.URL.Scheme)
	default:
		err = errors.New("not a proxy request (CONNECT or an absolute http:// URL)")
	}
	dest := net.JoinHostPort(host, strconv.Itoa(port))
	if err != nil {
		s.rec.add(s.log, Attempt{Job: s.jobIDOf(proxyToken(r)), Kind: kind, Dest: r.Host, Reason: "bad request: " + err.Error(), Client: r.RemoteAddr})
		http.Error(w, "agentrunner proxy: "+err.Error(), http.StatusBadRequest)
		return
	}
	j := s.jobByToken(proxyToken(r))
	if j == nil {
		s.rec.add(s.log, Attempt{Kind: kind, Dest: dest, Reason: "no valid proxy credential", Client: r.RemoteAddr})
		w.Header().Set("Proxy-Authenticate", `Basic realm="agentrunner"`)
		http.Error(w, "agentrunner proxy: proxy credential missing or unknown", http.StatusProxyAuthRequired)
		return
	}
	addrs, reason := s.check(r.Context(), j.allow, host, port)
	if reason != "" {
		s.rec.add(s.log, Attempt{Job: j.id, Kind: kind, Dest: dest, Reason: reason, Client: r.RemoteAddr})
		http.Error(w, "agentrunner proxy: "+dest+" refused: "+reason, http.StatusForbidden)
		return
	}
	s.rec.add(s.log, Attempt{Job: j.id, Kind: kind, Dest: dest, Allowed: true, Addr: addrs[0].Addr().String(), Client: r.RemoteAddr})
	if r.Method == http.MethodConnect {
		s.tunnel(w, r, addrs)
		return
	}
	r.Header.Del("Proxy-Authorization")
	s.forward.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), checkedKey{}, addrs)))
}

func (s *Server) jobIDOf(tok string) string {
	if j := s.jobByToken(tok); j != nil {
		return j.id
	}
	return ""
}

// splitHostPort splits an authority, using def when it has no port (0: a port is required).
func splitHostPort(hp string, def int) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		if def == 0 || strings.Count(hp, ":") > 1 && !strings.HasPrefix(hp, "[") {
			return "", 0, fmt.Errorf("%q is not host:port", hp)
		}
		host, ps = strings.TrimSuffix(strings.TrimPrefix(hp, "["), "]"), strconv.Itoa(def)
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q has a bad port", hp)
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q has no host", hp)
	}
	return normHost(host), port, nil
}

// check decides whether host:port may be dialled for allow and returns the addresses to dial
// (never empty) or the reason for refusing.
func (s *Server) check(ctx context.Context, allow *Allow, host string, port int) ([]netip.AddrPort, string) {
	if !allow.Allows(host, port) {
		return nil, "not on the allow list"
	}
	return s.resolve(ctx, host, port)
}

// resolve turns host into checked addresses, dropping every forbidden one.
func (s *Server) resolve(ctx context.Context, host string, port int) ([]netip.AddrPort, string) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if why := s.forbidden(ip); why != "" {
			return nil, why + " " + ip.String()
		}
		return []netip.AddrPort{netip.AddrPortFrom(ip.Unmap(), uint16(port))}, ""
	}
	ips, ok := s.cfg.testHosts[host]
	if !ok {
		var err error
		ips, err = s.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			var dnsErr *net.DNSError
			if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
				return nil, "name does not resolve"
			}
			return nil, "cannot resolve: " + err.Error()
		}
	}
	var out []netip.AddrPort
	var why string
	for _, ip := range ips {
		if w := s.forbidden(ip); w != "" {
			if why == "" {
				why = "resolves to " + w + " " + ip.Unmap().String()
			}
			continue
		}
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
	}
	if len(out) == 0 {
		if why == "" {
			why = "name has no address"
		}
		return nil, why
	}
	return out, ""
}

func (s *Server) forbidden(ip netip.Addr) string {
	for _, p := range s.cfg.testAllow {
		if p.Contains(ip.Unmap()) {
			return ""
		}
	}
	return Forbidden(ip)
}

// dialAny dials the checked addresses in order and returns the first connection.
func (s *Server) dialAny(ctx context.Context, addrs []netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{Timeout: s.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	var errs []error
	for _, a := range addrs {
		c, err := d.DialContext(ctx, "tcp", a.String())
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}
