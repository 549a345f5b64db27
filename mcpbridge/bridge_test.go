package mcpbridge

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The test binary doubles as the stdio MCP server the bridge starts: with childEnv set it
// serves MCP on stdin and stdout instead of running tests.
const childEnv = "MCPBRIDGE_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		serveChild()
		return
	}
	os.Exit(m.Run())
}

type textArgs struct {
	Text string `json:"text"`
}

func serveChild() {
	s := mcp.NewServer(&mcp.Implementation{Name: "child", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, a textArgs) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.Text}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "getenv"}, func(_ context.Context, _ *mcp.CallToolRequest, a textArgs) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: os.Getenv(a.Text)}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "wipe"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "wiped"}}}, nil, nil
	})
	_ = s.Run(context.Background(), &mcp.StdioTransport{})
}

const token = "0123456789abcdef0123"

// bridge starts a bridge over the test binary as its child and serves it on a test server.
func bridge(t *testing.T, tools []string, env map[string]string) (*Bridge, string) {
	t.Helper()
	t.Setenv(childEnv, "1") // the child inherits the bridge's environment
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(t.Context(), Config{Name: "things", Token: token, Command: []string{exe}, Env: env, Tools: tools}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)
	return b, srv.URL
}

func connect(t *testing.T, url string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	s, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: url, MaxRetries: -1, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func listed(t *testing.T, s *mcp.ClientSession) []string {
	t.Helper()
	var names []string
	for tool, err := range s.Tools(t.Context(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

func call(t *testing.T, s *mcp.ClientSession, tool string, args any) (string, error) {
	t.Helper()
	raw, _ := json.Marshal(args)
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: tool, Arguments: json.RawMessage(raw)})
	if err != nil {
		return "", err
	}
	var out []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			out = append(out, tc.Text)
		}
	}
	return strings.Join(out, ""), nil
}

// With an allow list, the bridge offers only the tools on it and refuses a call of any
// other, naming the list, even when the agent knows the tool's name from elsewhere.
func TestTheBridgeOffersOnlyAllowListedTools(t *testing.T) {
	b, url := bridge(t, []string{"echo", "search_issues"}, nil)
	if got := b.Offered(); !slices.Equal(got, []string{"echo"}) {
		t.Errorf("offered = %q, want [echo]", got)
	}
	if !slices.Equal(b.missing, []string{"search_issues"}) {
		t.Errorf("missing = %q, want [search_issues] (allow-listed, but the server has no such tool)", b.missing)
	}
	s := connect(t, url+"/"+token+Path)
	if got := listed(t, s); !slices.Equal(got, []string{"echo"}) {
		t.Errorf("tools/list = %q, want [echo]", got)
	}
	if got, err := call(t, s, "echo", textArgs{Text: "hello through the bridge"}); err != nil || got != "hello through the bridge" {
		t.Errorf("echo = %q, %v", got, err)
	}
	_, err := call(t, s, "wipe", struct{}{})
	if err == nil || !strings.Contains(err.Error(), `tool "wipe" is not in the allow list of connector things (echo, search_issues)`) {
		t.Errorf("wipe: err = %v, want a refusal naming the allow list", err)
	}
}

// Without an allow list every tool is offered, and the connector's environment (its secrets)
// reaches the child process.
func TestTheBridgeOffersEveryToolAndPassesItsEnvironment(t *testing.T) {
	_, url := bridge(t, nil, map[string]string{"CONNECTOR_SECRET": "s3cr3t-value"})
	s := connect(t, url+"/"+token+Path)
	if got := listed(t, s); !slices.Equal(got, []string{"echo", "getenv", "wipe"}) {
		t.Errorf("tools/list = %q, want every tool", got)
	}
	if got, err := call(t, s, "getenv", textArgs{Text: "CONNECTOR_SECRET"}); err != nil || got != "s3cr3t-value" {
		t.Errorf("the child's CONNECTOR_SECRET = %q, %v", got, err)
	}
	if got, err := call(t, s, "wipe", struct{}{}); err != nil || got != "wiped" {
		t.Errorf("wipe = %q, %v", got, err)
	}
}

// Only /<token>/mcp is served: another path, or the right path with another token, is not
// found, so a container on the run's network without the token gets nothing.
func TestTheBridgeAnswersOnlyItsTokenPath(t *testing.T) {
	_, url := bridge(t, nil, nil)
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	for _, p := range []string{"/mcp", "/" + strings.Repeat("0", len(token)) + Path, "/" + token, "/" + token + Path + "/x"} {
		req, _ := http.NewRequest(http.MethodPost, url+p, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s: status %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestNewRefusesAShortTokenAndAnEmptyCommand(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if _, err := New(t.Context(), Config{Token: "short", Command: []string{"x"}}, log); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("short token: %v", err)
	}
	if _, err := New(t.Context(), Config{Token: token}, log); err == nil || !strings.Contains(err.Error(), "no command") {
		t.Errorf("no command: %v", err)
	}
	if _, err := New(t.Context(), Config{Token: token, Command: []string{"/nonexistent/mcp-server"}}, log); err == nil ||
		!strings.Contains(err.Error(), "/nonexistent/mcp-server") {
		t.Errorf("missing program: %v", err)
	}
}
