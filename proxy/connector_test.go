package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestMCPGuardRefusesToolsOutsideTheAllowList(t *testing.T) {
	allowed := []string{"search_issues", "get_issue"}
	for _, c := range []struct {
		body    string
		refused bool
		tool    string
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_issue","arguments":{}}}`, false, ""},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, false, ""},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, false, ""},
		{`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_repo"}}`, true, "delete_repo"},
		// A batch hiding one forbidden call among allowed ones.
		{`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_issue"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_repo"}}]`, true, "delete_repo"},
		// Keys are case-sensitive for the server: a look-alike key must not hide the real one.
		{`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete_repo","Name":"get_issue"}}`, true, "delete_repo"},
		{`{"jsonrpc":"2.0","id":3,"Method":"x","method":"tools/call","params":{"name":"delete_repo"}}`, true, "delete_repo"},
		{`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":7}}`, true, "(unreadable tool name)"},
		{`not json`, true, "(unreadable request)"},
	} {
		_, tool, refused := mcpGuard([]byte(c.body), allowed)
		if refused != c.refused || tool != c.tool {
			t.Errorf("%s: refused %v tool %q, want %v %q", c.body, refused, tool, c.refused, c.tool)
		}
	}
}

// A remote connector's endpoint adds the credential outside the sandbox, forwards to the
// exact URL configured, meters nothing, and refuses a tool outside the allow list with a
// JSON-RPC error before anything reaches the server.
func TestConnectorEndpointAddsTheCredentialAndGuardsTools(t *testing.T) {
	var got []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = append(got, r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" "+string(body))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{"usage":{"input_tokens":1000000}}}`)
	}))
	defer up.Close()
	srv, err := New(Config{Keys: []KeyEndpoint{{Provider: "mcp-linear", Upstream: up.URL + "/mcp?team=a",
		Header: "authorization", Key: "lin-secret", Connector: true, Tools: []string{"get_issue"}}},
		Budget: 0.000001, testAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := srv.Register(Job{ID: "triage", Providers: []string{"mcp-linear"}})
	if err != nil {
		t.Fatal(err)
	}
	keys := httptest.NewServer(srv.KeysHandler())
	defer keys.Close()
	post := func(body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, keys.URL+"/"+tok+"/mcp-linear", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer agent-placeholder")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for range 2 { // the second call would be over the budget if connector calls were metered
		code, body := post(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_issue"}}`)
		if code != 200 || !strings.Contains(body, `"result"`) {
			t.Fatalf("allowed call: %d %s", code, body)
		}
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], "/mcp?team=a Bearer lin-secret {") {
		t.Errorf("upstream saw %q, want /mcp?team=a with the connector's credential", got)
	}
	code, body := post(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"delete_issue"}}`)
	var rpc struct {
		ID    int `json:"id"`
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &rpc); err != nil || code != 200 || rpc.ID != 9 ||
		!strings.Contains(rpc.Error.Message, `tool "delete_issue" is not in the allow list of connector mcp-linear (get_issue)`) {
		t.Errorf("refused call: %d %s", code, body)
	}
	if len(got) != 2 {
		t.Errorf("the refused call reached the server: %q", got)
	}
	if sp, _ := srv.Spend("triage"); sp.Calls != 0 || sp.Refused != 0 {
		t.Errorf("connector calls were metered: %+v", sp)
	}
}

// The guard reads what an agent sends: whatever the bytes, it never panics, and what it lets
// through holds no tools/call of a tool outside the list as a case-sensitive reader sees it.
func FuzzMCPGuard(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_issue"}}`))
	f.Add([]byte(`[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"method":"tools/call","params":{"name":"wipe"}}]`))
	f.Add([]byte(`{"method":"tools/call","params":{"name":"wipe","Name":"get_issue"}}`))
	f.Add([]byte(`{"method":"tools/call","params":null}`))
	f.Add([]byte(` [ ] `))
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _, refused := mcpGuard(body, []string{"get_issue"})
		if refused {
			return
		}
		var msgs []map[string]any
		if err := json.Unmarshal(body, &msgs); err != nil {
			var m map[string]any
			if json.Unmarshal(body, &m) != nil {
				t.Fatalf("let through a body that is not JSON-RPC: %q", body)
			}
			msgs = []map[string]any{m}
		}
		for _, m := range msgs {
			if m["method"] != "tools/call" {
				continue
			}
			p, _ := m["params"].(map[string]any)
			if p["name"] != "get_issue" {
				t.Fatalf("let through a call of %v: %q", p["name"], body)
			}
		}
	})
}
