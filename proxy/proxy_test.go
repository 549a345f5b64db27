package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// fakeResolver answers from a map; names it does not know do not resolve.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// upstreamServer records the key headers it sees.
type upstreamServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
	path []string
}

func newUpstream(t *testing.T) *upstreamServer {
	u := &upstreamServer{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Header.Clone())
		u.path = append(u.path, r.URL.RequestURI())
		u.mu.Unlock()
		fmt.Fprint(w, "hello")
	}))
	t.Cleanup(u.Close)
	return u
}

type fixture struct {
	srv      *Server
	proxyURL string
	keysURL  string
	up       *upstreamServer
	upPort   int
	token    string
}

// newFixture runs a proxy on loopback whose filter lets loopback through (test-only), with the
// upstream reachable as "up.test" and "private.test" resolving to a private address.
func newFixture(t *testing.T, keyHeader string) *fixture {
	t.Helper()
	up := newUpstream(t)
	upAddr := netip.MustParseAddrPort(up.Listener.Addr().String())
	cfg := Config{
		Resolver: fakeResolver{
			"up.test":      {upAddr.Addr()},
			"private.test": {netip.MustParseAddr("10.1.2.3")},
			"mixed.test":   {netip.MustParseAddr("192.168.0.1"), upAddr.Addr()},
		},
		Keys:      []KeyEndpoint{{Provider: "anthropic", Upstream: "http://up.test:" + fmt.Sprint(upAddr.Port()) + "/base", Header: keyHeader, Key: "REAL-KEY"}},
		testAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(upAddr.Port())
	tok, err := srv.Register(Job{ID: "job-a", Allow: []string{"up.test:" + port, "private.test:" + port, "mixed.test:" + port, "127.0.0.1:" + port, "169.254.169.254:80"}, Providers: []string{"anthropic"}})
	if err != nil {
		t.Fatal(err)
	}
	p := httptest.NewServer(srv.ProxyHandler())
	t.Cleanup(p.Close)
	k := httptest.NewServer(srv.KeysHandler())
	t.Cleanup(k.Close)
	return &fixture{srv: srv, proxyURL: p.URL, keysURL: k.URL, up: up, upPort: int(upAddr.Port()), token: tok}
}

func (f *fixture) client(user string) *http.Client {
	pu, _ := url.Parse(f.proxyURL)
	if user != "" {
		pu.User = url.UserPassword(user, "x")
	}
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), DisableKeepAlives: true}}
}

func TestForwardProxyAllowsListedAndRefusesTheRest(t *testing.T) {
	f := newFixture(t, "x-api-key")
	port := f.upPort
	for _, tc := range []struct {
		name, user, url string
		status          int
		blocked         string
	}{
		{"an allowed name is proxied", f.token, fmt.Sprintf("http://up.test:%d/x", port), 200, ""},
		{"a name off the list is refused", f.token, fmt.Sprintf("http://other.test:%d/", port), 403, "other.test:%d (not on the allow list)"},
		{"an allowed name resolving to a private address is refused", f.token, fmt.Sprintf("http://private.test:%d/", port), 403, "private.test:%d (resolves to private address 10.1.2.3)"},
		{"private addresses of a name are dropped, public ones used", f.token, fmt.Sprintf("http://mixed.test:%d/", port), 200, ""},
		{"a raw IP off the list is refused", f.token, fmt.Sprintf("http://127.0.0.2:%d/", port), 403, "127.0.0.2:%d (not on the allow list)"},
		{"a listed link-local IP is refused", f.token, "http://169.254.169.254/latest/", 403, "169.254.169.254:80 (link-local address (cloud metadata) 169.254.169.254)"},
		{"no credential is refused", "", fmt.Sprintf("http://up.test:%d/", port), 407, ""},
		{"an unknown credential is refused", "0123456789abcdef0123", fmt.Sprintf("http://up.test:%d/", port), 407, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.client(tc.user).Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.blocked != "" {
				want := strings.ReplaceAll(tc.blocked, "%d", fmt.Sprint(port))
				if b := f.srv.Blocked("job-a"); !contains(b, want) {
					t.Errorf("Blocked = %q, want it to hold %q", b, want)
				}
			}
		})
	}
	if got := f.srv.Blocked(""); len(got) == 0 {
		t.Error("refusals without a credential are not recorded under the empty job")
	}
	for _, a := range f.srv.Attempts("job-a") {
		if a.Allowed && a.Addr == "" {
			t.Errorf("allowed attempt %+v does not say which address was dialled", a)
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func TestConnectTunnelsOnlyToCheckedAddresses(t *testing.T) {
	f := newFixture(t, "x-api-key")
	for _, tc := range []struct {
		dest   string
		status string
	}{
		{fmt.Sprintf("up.test:%d", f.upPort), "200"},
		{fmt.Sprintf("private.test:%d", f.upPort), "403"},
		{"up.test:1", "403"},
	} {
		t.Run(tc.dest, func(t *testing.T) {
			c, err := net.Dial("tcp", strings.TrimPrefix(f.proxyURL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			auth := basic(f.token)
			// The first request inside the tunnel is sent with the CONNECT, as eager clients do.
			fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: %s\r\n\r\nGET /t HTTP/1.1\r\nHost: up\r\nConnection: close\r\n\r\n", tc.dest, tc.dest, auth)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(resp.StatusCode); got != tc.status {
				t.Fatalf("CONNECT %s: status %s, want %s", tc.dest, got, tc.status)
			}
			if resp.StatusCode != 200 {
				return
			}
			inner, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(inner.Body)
			if string(body) != "hello" {
				t.Errorf("through the tunnel: %q", body)
			}
		})
	}
}

func basic(user string) string {
	req, _ := http.NewRequest("GET", "http://x", nil)
	req.SetBasicAuth(user, "x")
	return req.Header.Get("Authorization")
}

func TestKeyEndpointAddsTheRealKeyAndDropsTheAgentsOwn(t *testing.T) {
	for _, tc := range []struct {
		header, wantHeader, wantValue string
	}{
		{"x-api-key", "X-Api-Key", "REAL-KEY"},
		{"authorization", "Authorization", "Bearer REAL-KEY"},
		{"x-goog-api-key", "X-Goog-Api-Key", "REAL-KEY"},
	} {
		t.Run(tc.header, func(t *testing.T) {
			f := newFixture(t, tc.header)
			req, _ := http.NewRequest("POST", f.keysURL+"/"+f.token+"/anthropic/v1/messages?key=PLACEHOLDER&beta=true", strings.NewReader("{}"))
			req.Header.Set("X-Api-Key", "PLACEHOLDER")
			req.Header.Set("Authorization", "Bearer PLACEHOLDER")
			req.Header.Set("X-Goog-Api-Key", "PLACEHOLDER")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			f.up.mu.Lock()
			defer f.up.mu.Unlock()
			h := f.up.seen[0]
			if h.Get(tc.wantHeader) != tc.wantValue {
				t.Errorf("upstream got %s=%q, want %q", tc.wantHeader, h.Get(tc.wantHeader), tc.wantValue)
			}
			for name, vals := range h {
				if strings.Contains(strings.Join(vals, ","), "PLACEHOLDER") {
					t.Errorf("upstream got the agent's placeholder in %s", name)
				}
			}
			if f.up.path[0] != "/base/v1/messages?beta=true" {
				t.Errorf("upstream path %q, want /base/v1/messages?beta=true", f.up.path[0])
			}
		})
	}
}

func TestKeyEndpointRefusesUnknownAgentsAndProviders(t *testing.T) {
	f := newFixture(t, "x-api-key")
	other, err := f.srv.Register(Job{ID: "job-b"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		status     int
	}{
		{"an unknown token", "/0123456789abcdef0000/anthropic/v1/messages", 403},
		{"a provider the job may not use", "/" + other + "/anthropic/v1/messages", 404},
		{"an unknown provider", "/" + f.token + "/openai/v1/responses", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(f.keysURL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
	f.up.mu.Lock()
	defer f.up.mu.Unlock()
	if len(f.up.seen) != 0 {
		t.Errorf("refused key requests reached the upstream: %v", f.up.path)
	}
}

func TestProductionFilterIgnoresNothingWithoutTheOverride(t *testing.T) {
	srv, err := New(Config{Resolver: fakeResolver{"local.test": {netip.MustParseAddr("127.0.0.1")}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, why := srv.resolve(context.Background(), "local.test", 80); !strings.Contains(why, "loopback") {
		t.Errorf("a name resolving to loopback passed the production filter: %q", why)
	}
	if err := TestOnlyAllow(&Config{}, &TestOnly{AllowPrefixes: []string{"127.0.0.0/8"}}); err != ErrTestOnly {
		t.Errorf("TestOnlyAllow in an untagged build = %v, want ErrTestOnly", err)
	}
}

func TestControlChannelRegistersAndReports(t *testing.T) {
	srv, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	in := strings.Join([]string{
		`{"op":"register","job":{"id":"j1","token":"tok-0123456789abcdef","allow":["a.test:443"]}}`,
		`{"op":"register","job":{"id":"j2","allow":["bad"]}}`,
		`{"op":"register","job":{"id":"j3","token":"short"}}`,
		`{"op":"blocked","job_id":"j1"}`,
		`{"op":"nope"}`,
	}, "\n")
	var out strings.Builder
	if err := srv.ServeControl(context.Background(), json.NewDecoder(strings.NewReader(in)), &out); err != nil {
		t.Fatal(err)
	}
	var reps []Reply
	dec := json.NewDecoder(strings.NewReader(out.String()))
	for dec.More() {
		var r Reply
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		reps = append(reps, r)
	}
	if len(reps) != 5 {
		t.Fatalf("%d replies, want 5: %s", len(reps), out.String())
	}
	for i, want := range []string{"", `"bad" is not host:port`, "at least 16 characters", "", `unknown op "nope"`} {
		if (want == "") != reps[i].OK || !strings.Contains(reps[i].Error, want) {
			t.Errorf("reply %d = %+v, want error %q", i, reps[i], want)
		}
	}
	if reps[0].Token != "tok-0123456789abcdef" {
		t.Errorf("register returned token %q", reps[0].Token)
	}
}
