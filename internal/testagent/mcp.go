package main

// Steps for the connector tests: the test agent plays both a stdio MCP server (run as a
// connector's sidecar) and an agent that uses connectors.
//
//	mcp-server             serves MCP on stdin/stdout until stdin ends. Tools: echo {text}
//	                       returns the text; secret_digest returns the first 12 hex digits of
//	                       the SHA-256 of $CONNECTOR_SECRET (so a test sees the sidecar has
//	                       the secret without the secret crossing to the agent); wipe is the
//	                       tool a connector's allow list leaves out.
//	mcp-call NAME TOOL JSON lists the tools of connector NAME (from $AGENT_MCP_CONFIG) and
//	                       calls TOOL with the JSON arguments. Prints `MCP NAME tools: a,b`
//	                       and `MCP NAME TOOL => <text>` or `MCP NAME TOOL => error: …`, and
//	                       records the same as outputs mcp_<NAME>_tools and mcp_<NAME>_<TOOL>.
//	                       Never fails, so one agent can try allowed and refused tools. A
//	                       NAME starting with $ is a variable holding the URL itself.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func init() {
	steps["mcp-server"] = step{0, func([]string) error { return mcpServer() }}
	steps["mcp-call"] = step{3, mcpCall}
}

type echoArgs struct {
	Text string `json:"text"`
}

func mcpServer() error {
	s := mcp.NewServer(&mcp.Implementation{Name: "testagent", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Returns its text."},
		func(_ context.Context, _ *mcp.CallToolRequest, a echoArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.Text}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "secret_digest", Description: "Digest of the connector's secret."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			sum := sha256.Sum256([]byte(os.Getenv("CONNECTOR_SECRET")))
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: hex.EncodeToString(sum[:])[:12]}}}, nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "wipe", Description: "A tool no allow list should let through."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "wiped"}}}, nil, nil
		})
	return s.Run(context.Background(), &mcp.StdioTransport{})
}

func mcpCall(a []string) error {
	name, tool, args := a[0], a[1], a[2]
	record := func(key, line string) {
		fmt.Printf("MCP %s %s\n", name, line)
		if !strings.HasPrefix(name, "$") {
			raw, _ := json.Marshal(line)
			_ = mergeOutput(key, raw)
		}
	}
	url, err := mcpURL(name)
	if strings.HasPrefix(name, "$") {
		url, err = os.ExpandEnv(name), nil
	}
	if err != nil {
		record("mcp_"+name+"_"+tool, tool+" => error: "+err.Error())
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "testagent", Version: "1"}, nil)
	s, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, MaxRetries: -1, DisableStandaloneSSE: true}, nil)
	if err != nil {
		record("mcp_"+name+"_"+tool, tool+" => error: connect: "+err.Error())
		return nil
	}
	defer s.Close()
	var names []string
	for t, err := range s.Tools(ctx, nil) {
		if err != nil {
			names = append(names, "error: "+err.Error())
			break
		}
		names = append(names, t.Name)
	}
	record("mcp_"+name+"_tools", "tools: "+strings.Join(names, ","))
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: json.RawMessage(args)})
	switch {
	case err != nil:
		record("mcp_"+name+"_"+tool, tool+" => error: "+err.Error())
	case res.IsError:
		record("mcp_"+name+"_"+tool, tool+" => error: "+text(res))
	default:
		record("mcp_"+name+"_"+tool, tool+" => "+text(res))
	}
	return nil
}

func text(r *mcp.CallToolResult) string {
	var parts []string
	for _, c := range r.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, " ")
}

// mcpURL reads connector name's URL from $AGENT_MCP_CONFIG (Claude Code's mcpServers format).
func mcpURL(name string) (string, error) {
	path := os.Getenv("AGENT_MCP_CONFIG")
	if path == "" {
		return "", fmt.Errorf("AGENT_MCP_CONFIG is not set")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var cfg struct {
		Servers map[string]struct {
			URL string `json:"url"`
		} `json:"mcpServers"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	s, ok := cfg.Servers[name]
	if !ok || s.URL == "" {
		return "", fmt.Errorf("%s has no server %q", path, name)
	}
	return s.URL, nil
}
