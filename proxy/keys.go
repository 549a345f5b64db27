package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// keyHeaders are the headers an agent could use to send a (placeholder) key; all are dropped
// before the real key is added, so the placeholder never reaches the API.
var keyHeaders = []string{"Authorization", "X-Api-Key", "X-Goog-Api-Key", "Api-Key"}

type keyRoute struct {
	ep       KeyEndpoint
	upstream *url.URL
	proxy    *httputil.ReverseProxy
}

func (s *Server) newKeyRoute(k KeyEndpoint) (*keyRoute, error) {
	if k.Provider == "" || strings.ContainsAny(k.Provider, "/?#") {
		return nil, fmt.Errorf("key endpoint: bad provider name %q", k.Provider)
	}
	u, err := url.Parse(k.Upstream)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("key endpoint %s: upstream %q is not an http(s) URL", k.Provider, k.Upstream)
	}
	if k.Header == "" || strings.ContainsAny(k.Header, ": \r\n") {
		return nil, fmt.Errorf("key endpoint %s: bad key header %q", k.Provider, k.Header)
	}
	if (k.Key == "" && !k.Connector) || strings.ContainsAny(k.Key, "\r\n") {
		return nil, fmt.Errorf("key endpoint %s: empty key or a key with a line break", k.Provider)
	}
	kr := &keyRoute{ep: k, upstream: u}
	hdr := http.CanonicalHeaderKey(k.Header)
	val := k.Key
	if strings.EqualFold(k.Header, "authorization") {
		val = "Bearer " + k.Key
	}
	kr.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			rest, _ := pr.In.Context().Value(restKey{}).(string)
			path := strings.TrimSuffix(u.Path, "/") + rest
			if k.Connector && (rest == "" || rest == "/") {
				path = u.Path // an MCP endpoint is one URL, served exactly as configured
			}
			pr.Out.URL = &url.URL{
				Scheme:   u.Scheme,
				Host:     u.Host,
				Path:     path,
				RawQuery: stripKeyQuery(pr.In.URL.Query()),
			}
			if k.Connector && u.RawQuery != "" && pr.Out.URL.RawQuery == "" {
				pr.Out.URL.RawQuery = u.RawQuery
			}
			pr.Out.Host = u.Host
			for _, h := range keyHeaders {
				pr.Out.Header.Del(h)
			}
			if k.Key != "" { // a connector may need no credential
				pr.Out.Header.Set(hdr, val)
			}
		},
		// Every successful answer is metered as it passes: its usage is the call's cost.
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode/100 != 2 || s.cfg.noMeter || k.Connector {
				return nil
			}
			jobID, _ := resp.Request.Context().Value(jobIDKey{}).(string)
			resp.Body = &meteredBody{rc: resp.Body, m: newMeter(resp.Header.Get("Content-Type")), done: func(u Usage) { s.charge(jobID, u) }}
			return nil
		},
		Transport:     s.keyTransport(),
		FlushInterval: -1, // model APIs stream server-sent events
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			// The error names the upstream only; it never holds the key.
			http.Error(w, "agentrunner proxy: "+k.Provider+" upstream: "+err.Error(), http.StatusBadGateway)
		},
	}
	return kr, nil
}

type restKey struct{}

// jobIDKey carries the calling job's id to the response's meter.
type jobIDKey struct{}

// stripKeyQuery drops a `key` parameter (Gemini accepts the key there too).
func stripKeyQuery(q url.Values) string {
	q.Del("key")
	return q.Encode()
}

// keyTransport reaches the fixed upstreams through the same address filter as agents' traffic:
// a misconfigured or hijacked upstream name must not lead the proxy into a private network.
func (s *Server) keyTransport() *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, ps, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			port, _ := strconv.Atoi(ps)
			addrs, reason := s.resolve(ctx, normHost(host), port)
			if reason != "" {
				return nil, fmt.Errorf("%s refused: %s", addr, reason)
			}
			return s.dialAny(ctx, addrs)
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 10 * time.Minute,
	}
}

// KeysHandler serves the key endpoints: /<token>/<provider>/<path> is forwarded to the
// provider's upstream base URL + /<path>, with the real key header set and any key the agent
// sent removed.
func (s *Server) KeysHandler() http.Handler { return http.HandlerFunc(s.serveKeys) }

func (s *Server) serveKeys(w http.ResponseWriter, r *http.Request) {
	tok, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	prov, rest, _ := strings.Cut(rest, "/")
	dest := "key endpoint " + prov
	j := s.jobByToken(tok)
	if j == nil {
		s.rec.add(s.log, Attempt{Kind: "KEY", Dest: dest, Reason: "unknown agent token", Client: r.RemoteAddr})
		http.Error(w, "agentrunner proxy: unknown agent token", http.StatusForbidden)
		return
	}
	kr := s.keys[prov]
	if kr == nil || !j.providers[prov] {
		s.rec.add(s.log, Attempt{Job: j.id, Kind: "KEY", Dest: dest, Reason: "no key endpoint for this agent", Client: r.RemoteAddr})
		http.Error(w, "agentrunner proxy: no key endpoint "+strconv.Quote(prov)+" for this agent", http.StatusNotFound)
		return
	}
	if kr.ep.Connector {
		s.serveConnector(w, r, j, kr, rest)
		return
	}
	if reason := s.overBudget(j.id); reason != "" {
		s.rec.add(s.log, Attempt{Job: j.id, Kind: KindBudget, Dest: kr.upstream.Host, Reason: reason, Client: r.RemoteAddr})
		refuseBudget(w, reason)
		return
	}
	s.rec.add(s.log, Attempt{Job: j.id, Kind: "KEY", Dest: kr.upstream.Host, Allowed: true, Client: r.RemoteAddr})
	ctx := context.WithValue(r.Context(), restKey{}, "/"+rest)
	ctx = context.WithValue(ctx, jobIDKey{}, j.id)
	kr.proxy.ServeHTTP(w, r.WithContext(ctx))
}
