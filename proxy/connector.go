package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// KindMCP is a call through a remote MCP connector's endpoint in the attempt record.
const KindMCP = "MCP"

// maxMCPBody bounds one MCP request an agent sends through a connector with a tool allow
// list: the proxy reads it whole to check it. MCP messages are small.
const maxMCPBody = 4 << 20

// serveConnector forwards an agent's request to a remote MCP connector with the connector's
// credential added, after checking a tool call against the connector's allow list.
func (s *Server) serveConnector(w http.ResponseWriter, r *http.Request, j *job, kr *keyRoute, rest string) {
	if len(kr.ep.Tools) > 0 && r.Method == http.MethodPost {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxMCPBody+1))
		r.Body.Close()
		if err != nil || len(body) > maxMCPBody {
			http.Error(w, "agentrunner proxy: MCP request unreadable or larger than 4 MiB", http.StatusRequestEntityTooLarge)
			return
		}
		if id, tool, refused := mcpGuard(body, kr.ep.Tools); refused {
			reason := fmt.Sprintf("tool %q is not in the allow list of connector %s (%s)", tool, kr.ep.Provider, strings.Join(kr.ep.Tools, ", "))
			s.rec.add(s.log, Attempt{Job: j.id, Kind: KindMCP, Dest: kr.upstream.Host, Reason: reason, Client: r.RemoteAddr})
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": id,
				"error": map[string]any{"code": -32602, "message": "agentrunner: " + reason}})
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	s.rec.add(s.log, Attempt{Job: j.id, Kind: KindMCP, Dest: kr.upstream.Host, Allowed: true, Client: r.RemoteAddr})
	ctx := context.WithValue(r.Context(), restKey{}, "/"+rest)
	ctx = context.WithValue(ctx, jobIDKey{}, j.id)
	kr.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// mcpGuard looks for a tools/call of a tool outside allowed in an MCP request body (one
// JSON-RPC message or a batch). Keys are matched exactly, as the connector's server matches
// them: encoding/json's case-insensitive struct fields would let {"name": "wipe", "Name":
// "ok"} pass a check the server then reads as a call of wipe. A body that is not JSON-RPC is
// refused too, since the server would read it some other way than the check did.
func mcpGuard(body []byte, allowed []string) (id json.RawMessage, tool string, refused bool) {
	var msgs []map[string]json.RawMessage
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &msgs); err != nil {
			return nil, "(unreadable request)", true
		}
	} else {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &m); err != nil {
			return nil, "(unreadable request)", true
		}
		msgs = append(msgs, m)
	}
	for _, m := range msgs {
		var method string
		if raw, ok := m["method"]; ok && json.Unmarshal(raw, &method) != nil {
			return m["id"], "(unreadable method)", true
		}
		if method != "tools/call" {
			continue
		}
		var params map[string]json.RawMessage
		var name string
		if json.Unmarshal(m["params"], &params) != nil || json.Unmarshal(params["name"], &name) != nil {
			return m["id"], "(unreadable tool name)", true
		}
		if !slices.Contains(allowed, name) {
			return m["id"], name, true
		}
	}
	return nil, "", false
}
