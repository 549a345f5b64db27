package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConnectors(t *testing.T) {
	r, errs := Parse("c.yaml", []byte(`on: push
secrets: [LINEAR_TOKEN, SENTRY_TOKEN]
defaults: {image: i}
connectors:
  linear:                       # remote
    url: https://mcp.linear.app/mcp
    secret: LINEAR_TOKEN
    tools: [search_issues, get_issue]
  sentry:                       # local stdio server as a sidecar
    image: ghcr.io/acme/sentry-mcp:1.2
    command: [sentry-mcp, --stdio]
    secrets: [SENTRY_TOKEN]
    env: {SENTRY_ORG: acme}
    network: {allow: ["sentry.io:443"]}
  anon: {url: "http://mcp.internal:8080/mcp"}
agents:
  triage:
    uses: claude-code
    prompt: p
    connectors:
      docs: {image: docs-mcp:1}
  fix:
    uses: codex
    prompt: p
    network: {allow: ["api.openai.com:443"]}
  run: {command: [make], network: none}
`))
	if errs != nil {
		t.Fatal(errs)
	}
	want := []*Connector{
		{Pos: Pos{File: "c.yaml", Line: 5, Col: 3}, Name: "linear", URL: "https://mcp.linear.app/mcp", Secret: "LINEAR_TOKEN",
			Tools: []string{"search_issues", "get_issue"}},
		{Pos: Pos{File: "c.yaml", Line: 9, Col: 3}, Name: "sentry", Image: "ghcr.io/acme/sentry-mcp:1.2",
			Command: []string{"sentry-mcp", "--stdio"}, Secrets: []string{"SENTRY_TOKEN"}, Env: map[string]string{"SENTRY_ORG": "acme"},
			Network: &Network{Pos: Pos{File: "c.yaml", Line: 14, Col: 5}, Mode: NetworkAllow, Allow: []string{"sentry.io:443"}}},
		{Pos: Pos{File: "c.yaml", Line: 15, Col: 3}, Name: "anon", URL: "http://mcp.internal:8080/mcp"},
	}
	if diff := cmp.Diff(want, r.Connectors); diff != "" {
		t.Errorf("routine connectors, in file order (-want +got):\n%s", diff)
	}
	triage := r.Agent("triage")
	docs := &Connector{Pos: Pos{File: "c.yaml", Line: 21, Col: 7}, Name: "docs", Image: "docs-mcp:1",
		Network: &Network{Pos: Pos{File: "c.yaml", Line: 21, Col: 7}, Mode: NetworkNone}}
	if diff := cmp.Diff([]*Connector{docs}, triage.Connectors); diff != "" {
		t.Errorf("triage's own connectors, a local one with network none by default (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(append(want, docs), r.AgentConnectors(triage)); diff != "" {
		t.Errorf("AgentConnectors(triage): the routine's, then its own (-want +got):\n%s", diff)
	}
	if got := r.AgentConnectors(r.Agent("fix")); len(got) != 3 || got[0] != r.Connectors[0] {
		t.Errorf("AgentConnectors(fix) = %v, want the routine's three", got)
	}
	if r.Agent("fix").Connectors != nil {
		t.Errorf("fix has connectors of its own: %v", r.Agent("fix").Connectors)
	}

	// Agents with connectors are on the run's internal network: none becomes an empty allow
	// list, at the same position; an allow list stays as written.
	for name, wantNet := range map[string]Network{
		"triage": {Pos: Pos{File: "c.yaml", Line: 17, Col: 3}, Mode: NetworkAllow},
		"fix":    {Pos: Pos{File: "c.yaml", Line: 25, Col: 5}, Mode: NetworkAllow, Allow: []string{"api.openai.com:443"}},
		"run":    {Pos: Pos{File: "c.yaml", Line: 26, Col: 26}, Mode: NetworkAllow},
	} {
		if diff := cmp.Diff(wantNet, r.Agent(name).Network); diff != "" {
			t.Errorf("%s's network (-want +got):\n%s", name, diff)
		}
	}

	// Without connectors, none stays none.
	r, errs = Parse("c.yaml", []byte("on: push\nagents:\n  a: {image: i, command: [x]}\n  b: {image: i, command: [x], connectors: {m: {url: 'https://m.example/mcp'}}}\n"))
	if errs != nil {
		t.Fatal(errs)
	}
	if a := r.Agent("a"); a.Network.Mode != NetworkNone || r.AgentConnectors(a) != nil {
		t.Errorf("an agent without connectors: network %+v, connectors %v", a.Network, r.AgentConnectors(a))
	}
	if b := r.Agent("b"); b.Network.Mode != NetworkAllow || len(b.Network.Allow) != 0 || b.Connectors[0].Network != nil {
		t.Errorf("an agent with a remote connector: network %+v, the connector's %+v", b.Network, b.Connectors[0].Network)
	}
}

// TestConnectorErrors holds the mistakes people make with connectors, with the message and
// position they get.
func TestConnectorErrors(t *testing.T) {
	const agent = "agents:\n  a: {uses: claude-code, prompt: p, image: i}\n"
	tests := []struct {
		name string
		yaml string
		want []string // each a substring of one error, in order
	}{
		{"neither url nor image", "on: push\nconnectors:\n  x: {tools: [t]}\n" + agent,
			[]string{`f.yaml:3:3: connector "x" needs url: (a remote MCP server) or image: (a local stdio one)`}},
		{"an empty connector", "on: push\nconnectors:\n  x:\n" + agent,
			[]string{`f.yaml:3:3: connector "x" needs url: (a remote MCP server) or image: (a local stdio one)`}},
		{"both url and image", "on: push\nconnectors:\n  x: {url: 'https://m.example/mcp', image: m}\n" + agent,
			[]string{`f.yaml:3:37: connector "x" has both url: (a remote MCP server) and image: (a local stdio one); keep one`}},
		{"a connector that is a string", "on: push\nconnectors:\n  x: https://m.example/mcp\n" + agent,
			[]string{`f.yaml:3:6: connector "x" must be a mapping: {url: https://...} for a remote server, or {image: ...} for a local one; got a string`}},
		{"connectors as a list", "on: push\nconnectors: [x]\n" + agent,
			[]string{`f.yaml:2:13: connectors must be a mapping of key: value lines, got a list`}},
		{"a bad connector name", "on: push\nconnectors:\n  my.server: {url: 'https://m.example/mcp'}\n" + agent,
			[]string{`f.yaml:3:3: connector name "my.server" is not valid: use letters, digits, _ and -, starting with a letter`}},
		{"a twice-named connector", "on: push\nconnectors:\n  x: {url: 'https://m.example/mcp'}\n  x: {image: m}\n" + agent,
			[]string{`f.yaml:4:3: key "x" is set twice in connectors (first at line 3)`}},
		{"a relative url", "on: push\nconnectors:\n  x: {url: /mcp}\n" + agent,
			[]string{`f.yaml:3:12: connector "x": url "/mcp" must start with https:// (or http://); write an absolute URL like https://mcp.example.com/mcp`}},
		{"a url of another scheme", "on: push\nconnectors:\n  x: {url: 'ws://m.example/mcp'}\n" + agent,
			[]string{`f.yaml:3:12: connector "x": url "ws://m.example/mcp" must start with https:// (or http://)`}},
		{"a url without a host", "on: push\nconnectors:\n  x: {url: 'https:///mcp'}\n" + agent,
			[]string{`f.yaml:3:12: connector "x": url "https:///mcp" has no host`}},
		{"a url that does not parse", "on: push\nconnectors:\n  x: {url: 'https://m.example:port/mcp'}\n" + agent,
			[]string{`f.yaml:3:12: connector "x": url "https://m.example:port/mcp" is not a valid URL`}},
		{"a url with a password", "on: push\nconnectors:\n  x: {url: 'https://me:pw@m.example/mcp'}\n" + agent,
			[]string{`f.yaml:3:12: connector "x": url "https://me:pw@m.example/mcp" holds a user or password; name a routine secret in secret: instead`}},
		{"secret on a local connector", "on: push\nsecrets: [T]\nconnectors:\n  x: {image: m, secret: T}\n" + agent,
			[]string{`f.yaml:4:17: connector "x" is local (image: at line 4), so it takes no secret:, the bearer token of a remote server (url:); hand the server secrets as environment variables with secrets: [NAME]`}},
		{"local keys on a remote connector", "on: push\nsecrets: [T]\nconnectors:\n  x:\n    url: https://m.example/mcp\n    command: [m]\n    env: {A: b}\n    secrets: [T]\n    network: none\n" + agent,
			[]string{
				`f.yaml:6:5: connector "x" is remote (url: at line 5), so it takes no command:, which sets up a local server's container (image:); remove it`,
				`f.yaml:7:5: connector "x" is remote (url: at line 5), so it takes no env:`,
				`f.yaml:8:5: connector "x" is remote (url: at line 5), so it takes no secrets:, which sets up a local server's container (image:); remove it; a remote server's credential is one secret, named in secret:`,
				`f.yaml:9:5: connector "x" is remote (url: at line 5), so it takes no network:`}},
		{"a secret the routine does not list", "on: push\nsecrets: [LINEAR_TOKEN]\nconnectors:\n  x: {url: 'https://m.example/mcp', secret: LINEAR_TOKN}\n" + agent,
			[]string{`f.yaml:4:45: connector "x" asks for secret "LINEAR_TOKN", which the routine does not list; add it to the top-level secrets: list; did you mean "LINEAR_TOKEN"?`}},
		{"secrets the routine does not list", "on: push\nsecrets: [A]\nconnectors:\n  x: {image: m, secrets: [A, B]}\n" + agent,
			[]string{`f.yaml:4:30: connector "x" asks for secret "B", which the routine does not list; add it to the top-level secrets: list`}},
		{"an agent connector's secret the routine does not list", "on: push\nagents:\n  a:\n    uses: codex\n    prompt: p\n    image: i\n    connectors:\n      x: {url: 'https://m.example/mcp', secret: T}\n",
			[]string{`f.yaml:8:49: connector "x" asks for secret "T", which the routine does not list`}},
		{"a bad secret name", "on: push\nconnectors:\n  x: {url: 'https://m.example/mcp', secret: my-token}\n" + agent,
			[]string{`f.yaml:3:45: secret: "my-token" is not a valid name`}},
		{"an empty image", "on: push\nconnectors:\n  x: {image: ''}\n" + agent,
			[]string{`f.yaml:3:14: connector "x": image is empty; name the server's container image`}},
		{"a shell string command", "on: push\nconnectors:\n  x: {image: m, command: m --stdio}\n" + agent,
			[]string{`f.yaml:3:26: command must be an argv list, not a shell string: write command: [m, --stdio]`}},
		{"an open connector network", "on: push\nconnectors:\n  x: {image: m, network: open}\n" + agent,
			[]string{`f.yaml:3:26: connector "x": a connector's network is none or an allow list ({allow: [host:port, ...]}), not open; list the hosts the server needs`}},
		{"a bad connector network", "on: push\nconnectors:\n  x: {image: m, network: none-at-all}\n" + agent,
			[]string{`f.yaml:3:26: connector "x": network must be none or {allow: [host:port, ...]}, got "none-at-all"`}},
		{"a bad connector allow entry", "on: push\nconnectors:\n  x: {image: m, network: {allow: [sentry.io]}}\n" + agent,
			[]string{`f.yaml:3:35: network.allow: "sentry.io" is not host:port`}},
		{"empty tools", "on: push\nconnectors:\n  x: {url: 'https://m.example/mcp', tools: []}\n" + agent,
			[]string{`f.yaml:3:44: connector "x": tools is empty, so agents could call no tool; list the tools they may call, or remove tools: to allow every tool`}},
		{"an empty tool name", "on: push\nconnectors:\n  x: {url: 'https://m.example/mcp', tools: [a, '']}\n" + agent,
			[]string{`f.yaml:3:48: connector "x": tools[1] is empty; name a tool the server offers`}},
		{"a tool twice", "on: push\nconnectors:\n  x: {url: 'https://m.example/mcp', tools: [get_issue, search, get_issue]}\n" + agent,
			[]string{`f.yaml:3:64: connector "x" lists tool "get_issue" twice in tools`}},
		{"tools not a list", "on: push\nconnectors:\n  x: {url: 'https://m.example/mcp', tools: get_issue}\n" + agent,
			[]string{`f.yaml:3:44: tools must be a list`}},
		{"a misspelt connector key", "on: push\nconnectors:\n  x: {url: 'https://m.example/mcp', tool: [a]}\n" + agent,
			[]string{`f.yaml:3:37: unknown key "tool" in connector "x"; did you mean "tools"?`}},
		{"a token key", "on: push\nconnectors:\n  x: {url: 'https://m.example/mcp', token: abc}\n" + agent,
			[]string{`f.yaml:3:37: unknown key "token" in connector "x"; a remote server's credential is a routine secret named in secret:`}},
		{"an agent connector named like a routine one", "on: push\nconnectors:\n  x: {url: 'https://m.example/mcp'}\nagents:\n  a:\n    uses: codex\n    prompt: p\n    image: i\n    connectors:\n      y: {image: y}\n      x: {image: m}\n",
			[]string{`f.yaml:11:7: agent "a": connector "x" is already defined by the routine (line 3), and an agent's connectors add to the routine's; rename this one, or remove it to use the routine's`}},
		{"aider with its own connectors", "on: push\nagents:\n  a:\n    uses: aider\n    prompt: p\n    image: i\n    connectors:\n      x: {image: m}\n",
			[]string{`f.yaml:7:5: agent "a": aider has no MCP support, so it cannot use connectors (x); use claude-code, codex, gemini or a command`}},
		{"aider with the routine's connectors", "on: push\nconnectors:\n  x: {image: m}\n  y: {url: 'https://m.example/mcp'}\nagents:\n  ok: {uses: codex, prompt: p, image: i}\n  a:\n    image: i\n    uses: aider\n    prompt: p\n",
			[]string{`f.yaml:9:5: agent "a": aider has no MCP support, so it cannot use connectors (x, y); use claude-code, codex, gemini or a command; or move the routine's connectors to the agents that use them`}},
		{"an open agent with connectors", "on: push\nconnectors:\n  x: {image: m}\nagents:\n  a: {uses: codex, prompt: p, image: i, network: open}\n",
			[]string{`f.yaml:5:50: agent "a": connectors are reached over the run's internal network, which an agent with network: open is not on; give the agent an allow list (network: {allow: [...]}) or none`}},
		{"an agent open by default with its own connectors", "on: push\ndefaults: {image: i, network: open}\nagents:\n  plain: {command: [x]}\n  a: {uses: codex, prompt: p, connectors: {x: {image: m}}}\n",
			[]string{`f.yaml:5:3: agent "a": connectors are reached over the run's internal network, which an agent with network: open is not on; give the agent an allow list (network: {allow: [...]}) or none (it has network: open from defaults:, so set network: on the agent)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, errs := Parse("f.yaml", []byte(tt.yaml))
			if errs == nil {
				t.Fatalf("Parse accepted it: %+v", r)
			}
			got := errs.Error()
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("want an error containing\n  %s\ngot:\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
			if len(errs) != len(tt.want) {
				t.Errorf("got %d errors, want %d:\n%s", len(errs), len(tt.want), got)
			}
		})
	}
}

func TestConnectorsAllowedWhereTheyWork(t *testing.T) {
	for name, src := range map[string]string{
		"an open agent without connectors beside one with": "on: push\ndefaults: {image: i}\nagents:\n  a: {command: [x], network: open}\n  b: {command: [x], connectors: {m: {image: m}}}\n",
		"an aider agent without connectors":                "on: push\ndefaults: {image: i}\nagents:\n  a: {uses: aider, prompt: p}\n  b: {uses: gemini, prompt: p, connectors: {m: {image: m}}}\n",
		"a command agent with the routine's connectors":    "on: push\nconnectors: {m: {image: m, network: none}}\nagents:\n  a: {command: [x], image: i, network: {allow: ['a.example:443']}}\n",
		"the same connector name in two agents":            "on: push\ndefaults: {image: i}\nagents:\n  a: {command: [x], connectors: {m: {image: m}}}\n  b: {command: [x], connectors: {m: {image: n}}}\n",
		"an empty connectors mapping":                      "on: push\nconnectors: {}\nagents:\n  a:\n    command: [x]\n    image: i\n    connectors:\n",
	} {
		if _, errs := Parse("f.yaml", []byte(src)); errs != nil {
			t.Errorf("%s: %v", name, errs)
		}
	}
}

func TestWorkflowRefusesConnectors(t *testing.T) {
	_, errs := ParseWorkflow("workflow.yaml", []byte(`connectors:
  x: {url: 'https://m.example/mcp'}
agents:
  a:
    command: [x]
    connectors: {y: {image: m}}
  b: {uses: aider, prompt: p}
`), WorkflowRules{Image: "i", Depth: 1})
	want := []string{
		"workflow.yaml:1:1: a workflow an agent writes has no connectors: connectors come from the routine that orchestrates, not from a generated workflow; remove it",
		`workflow.yaml:6:5: agent "a": agents of a workflow an agent writes have no connectors: connectors come from the routine that orchestrates, not from a generated workflow; remove it`,
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d (and none about aider):\n%v", len(errs), len(want), errs)
	}
	for i, w := range want {
		if errs[i].Error() != w {
			t.Errorf("error %d = %q\nwant        %q", i, errs[i].Error(), w)
		}
	}
}
