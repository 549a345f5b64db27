package preset

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Given out of order: presets must not depend on the caller's order.
var testServers = []MCPServer{
	{Name: "zeta", URL: "http://10.0.0.2:8081/t/mcp/zeta"},
	{Name: "alpha_1", URL: "http://10.0.0.2:8081/t/mcp/alpha?x=1&y=2"},
}

func TestSupportsMCP(t *testing.T) {
	t.Parallel()
	want := map[string]bool{"aider": false, "claude-code": true, "codex": true, "gemini": true}
	for _, name := range Names() {
		if got := mustGet(t, name).SupportsMCP(); got != want[name] {
			t.Errorf("%s: SupportsMCP() = %v, want %v", name, got, want[name])
		}
	}
}

func TestWithConnectors(t *testing.T) {
	t.Parallel()
	const prompt = "--dangerously-skip-permissions -- fix it"
	tests := []struct {
		preset   string
		with     map[string]any
		wantArgv []string
		want     Wiring
	}{
		{
			preset: "claude-code",
			wantArgv: []string{"claude", "-p", "--output-format", "json", "--permission-mode", "bypassPermissions",
				"--mcp-config", "/agent/out/mcp.json", "--", prompt},
			want: Wiring{Args: []string{"--mcp-config", "/agent/out/mcp.json"}},
		},
		{
			preset: "codex", with: map[string]any{"model": "gpt-5-codex"},
			wantArgv: []string{"codex", "exec", "--json", "--skip-git-repo-check", "--sandbox", "danger-full-access",
				"--model", "gpt-5-codex",
				"-c", `mcp_servers.alpha_1.url="http://10.0.0.2:8081/t/mcp/alpha?x=1&y=2"`,
				"-c", `mcp_servers.zeta.url="http://10.0.0.2:8081/t/mcp/zeta"`,
				"--", prompt},
			want: Wiring{Args: []string{
				"-c", `mcp_servers.alpha_1.url="http://10.0.0.2:8081/t/mcp/alpha?x=1&y=2"`,
				"-c", `mcp_servers.zeta.url="http://10.0.0.2:8081/t/mcp/zeta"`,
			}},
		},
		{
			preset:   "gemini",
			wantArgv: []string{"gemini", "--output-format", "json", "--approval-mode", "yolo", "--prompt=" + prompt},
			want: Wiring{
				Env: map[string]string{"GEMINI_CLI_SYSTEM_SETTINGS_PATH": "/agent/out/gemini-settings.json"},
				Files: map[string][]byte{"gemini-settings.json": []byte(`{
  "mcpServers": {
    "alpha_1": {
      "httpUrl": "http://10.0.0.2:8081/t/mcp/alpha?x=1&y=2"
    },
    "zeta": {
      "httpUrl": "http://10.0.0.2:8081/t/mcp/zeta"
    }
  }
}
`)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.preset, func(t *testing.T) {
			t.Parallel()
			p := mustGet(t, tt.preset)
			c, err := p.Command(prompt, tt.with, Options{})
			if err != nil {
				t.Fatal(err)
			}
			planned := slices.Clone(c.Argv)
			argv, w, err := p.WithConnectors(c.Argv, testServers)
			if err != nil {
				t.Fatalf("WithConnectors: %v", err)
			}
			if diff := cmp.Diff(tt.wantArgv, argv); diff != "" {
				t.Errorf("argv (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, w); diff != "" {
				t.Errorf("wiring (-want +got):\n%s", diff)
			}
			if !slices.Equal(c.Argv, planned) {
				t.Errorf("WithConnectors changed its argv argument to %q", c.Argv)
			}
		})
	}
}

func TestWithConnectorsWithoutServersIsANoOp(t *testing.T) {
	t.Parallel()
	for _, name := range Names() {
		p := mustGet(t, name)
		c, err := p.Command("p", nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, servers := range [][]MCPServer{nil, {}} {
			argv, w, err := p.WithConnectors(c.Argv, servers)
			if err != nil {
				t.Errorf("%s: WithConnectors(%#v): %v", name, servers, err)
			}
			if !slices.Equal(argv, c.Argv) {
				t.Errorf("%s: argv changed to %q", name, argv)
			}
			if diff := cmp.Diff(Wiring{}, w); diff != "" {
				t.Errorf("%s: wiring (-want +got):\n%s", name, diff)
			}
		}
	}
}

func TestWithConnectorsAiderHasNoMCP(t *testing.T) {
	t.Parallel()
	p := mustGet(t, "aider")
	c, err := p.Command("p", nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	argv, w, err := p.WithConnectors(c.Argv, testServers)
	if err == nil || !strings.Contains(err.Error(), "aider has no MCP support") {
		t.Fatalf("err = %v, want one saying aider has no MCP support", err)
	}
	if !slices.Equal(argv, c.Argv) {
		t.Errorf("argv changed to %q", argv)
	}
	if diff := cmp.Diff(Wiring{}, w); diff != "" {
		t.Errorf("wiring (-want +got):\n%s", diff)
	}
}

// The flags go before the "--" that ends the options even when an option value or the prompt
// is "--" itself.
func TestWithConnectorsFindsTheSeparatorBeforeThePrompt(t *testing.T) {
	t.Parallel()
	p := mustGet(t, "claude-code")
	c, err := p.Command("--", map[string]any{"append-system-prompt": "--"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	argv, _, err := p.WithConnectors(c.Argv, testServers)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"claude", "-p", "--output-format", "json", "--permission-mode", "bypassPermissions",
		"--append-system-prompt", "--", "--mcp-config", "/agent/out/mcp.json", "--", "--"}
	if diff := cmp.Diff(want, argv); diff != "" {
		t.Errorf("argv (-want +got):\n%s", diff)
	}

	// An argv with no "--" is left alone; the flags are still in the Wiring.
	plain := []string{"claude", "-p", "hello"}
	argv, w, err := p.WithConnectors(plain, testServers)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(argv, plain) {
		t.Errorf("argv without -- changed to %q", argv)
	}
	if !slices.Equal(w.Args, []string{"--mcp-config", MCPConfigFile}) {
		t.Errorf("wiring args = %q", w.Args)
	}
}

// The runner adds base-URL flags and connector flags to the same planned argv.
func TestWithConnectorsAfterWithBaseURLs(t *testing.T) {
	t.Parallel()
	p := mustGet(t, "codex")
	c, err := p.Command("p", nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	argv := p.WithBaseURLs(c.Argv, map[Provider]string{OpenAI: "http://proxy/openai/v1"})
	argv, _, err = p.WithConnectors(argv, testServers[:1])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"codex", "exec", "--json", "--skip-git-repo-check", "--sandbox", "danger-full-access",
		"-c", `openai_base_url="http://proxy/openai/v1"`,
		"-c", `mcp_servers.zeta.url="http://10.0.0.2:8081/t/mcp/zeta"`, "--", "p"}
	if diff := cmp.Diff(want, argv); diff != "" {
		t.Errorf("argv (-want +got):\n%s", diff)
	}
}

func TestWithConnectorsCodexQuotesTheURL(t *testing.T) {
	t.Parallel()
	p := mustGet(t, "codex")
	url := `http://h:1/a"b\c?q="x"`
	argv, w, err := p.WithConnectors([]string{"codex", "exec", "--", "p"}, []MCPServer{{Name: "odd", URL: url}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"codex", "exec", "-c", `mcp_servers.odd.url="http://h:1/a\"b\\c?q=\"x\""`, "--", "p"}
	if diff := cmp.Diff(want, argv); diff != "" {
		t.Errorf("argv (-want +got):\n%s", diff)
	}
	_, value, _ := strings.Cut(w.Args[1], "=")
	// The escapes tomlString uses mean the same in Go and TOML basic strings.
	if got, err := strconv.Unquote(value); err != nil || got != url {
		t.Errorf("value %s reads back as %q, %v; want %q", value, got, err, url)
	}
}

func TestTOMLString(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"http://h/p", `"http://h/p"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"a\tb\nc\rd\be\ff", `"a\tb\nc\rd\be\ff"`},
		{"\x00\x1f\x7f", `"\u0000\u001F\u007F"`},
		{"héllo→", `"héllo→"`},
		{"bad\xffutf8", "\"bad\uFFFDutf8\""},
	}
	for _, tt := range tests {
		got := tomlString(tt.in)
		if got != tt.want {
			t.Errorf("tomlString(%q) = %s, want %s", tt.in, got, tt.want)
		}
		back, err := strconv.Unquote(got)
		if err != nil || back != strings.ToValidUTF8(tt.in, "\uFFFD") {
			t.Errorf("tomlString(%q) = %s reads back as %q, %v", tt.in, got, back, err)
		}
	}
}

func TestWithConnectorsRejectsBadServers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		servers []MCPServer
		want    string
	}{
		{"a dot would change codex's key path", []MCPServer{{Name: "a.b", URL: "http://h/"}}, `connector name "a.b"`},
		{"an equals sign", []MCPServer{{Name: "a=b", URL: "http://h/"}}, `connector name "a=b"`},
		{"an empty name", []MCPServer{{Name: "", URL: "http://h/"}}, `connector name ""`},
		{"a name given twice", []MCPServer{{Name: "a", URL: "http://h/1"}, {Name: "a", URL: "http://h/2"}}, `connector "a" is given twice`},
		{"an empty URL", []MCPServer{{Name: "a"}}, "not an absolute http or https URL"},
		{"a relative URL", []MCPServer{{Name: "a", URL: "/mcp"}}, "not an absolute http or https URL"},
		{"another scheme", []MCPServer{{Name: "a", URL: "file:///etc/passwd"}}, "not an absolute http or https URL"},
		{"a control character", []MCPServer{{Name: "a", URL: "http://h/\n"}}, "invalid control character"},
	}
	for _, tt := range tests {
		for _, name := range []string{"claude-code", "codex", "gemini"} {
			p := mustGet(t, name)
			argv := []string{"x", "--", "p"}
			got, w, err := p.WithConnectors(argv, tt.servers)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s, %s: err = %v, want it to contain %q", tt.name, name, err, tt.want)
			}
			if !slices.Equal(got, argv) || len(w.Args)+len(w.Env)+len(w.Files) != 0 {
				t.Errorf("%s, %s: an error came with argv %q and wiring %+v", tt.name, name, got, w)
			}
		}
	}
}

func TestMCPConfig(t *testing.T) {
	t.Parallel()
	got := string(MCPConfig(testServers))
	want := `{
  "mcpServers": {
    "alpha_1": {
      "type": "http",
      "url": "http://10.0.0.2:8081/t/mcp/alpha?x=1&y=2"
    },
    "zeta": {
      "type": "http",
      "url": "http://10.0.0.2:8081/t/mcp/zeta"
    }
  }
}
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("MCPConfig (-want +got):\n%s", diff)
	}

	var parsed struct {
		MCPServers map[string]struct{ Type, URL string } `json:"mcpServers"`
	}
	odd := []MCPServer{{Name: "q", URL: `http://h/"quoted"\<tag>`}}
	if err := json.Unmarshal(MCPConfig(odd), &parsed); err != nil {
		t.Fatal(err)
	}
	if s := parsed.MCPServers["q"]; s.Type != "http" || s.URL != odd[0].URL || len(parsed.MCPServers) != 1 {
		t.Errorf("parsed %+v", parsed)
	}

	if got := string(MCPConfig(nil)); got != "{\n  \"mcpServers\": {}\n}\n" {
		t.Errorf("MCPConfig(nil) = %q", got)
	}
	if MCPConfigFile != "/agent/out/mcp.json" || EnvMCPConfig != "AGENT_MCP_CONFIG" {
		t.Errorf("MCPConfigFile = %q, EnvMCPConfig = %q", MCPConfigFile, EnvMCPConfig)
	}
}

// The gemini settings file must be JSON gemini reads as streamable HTTP (httpUrl, not the
// SSE url), at the path its environment variable names.
func TestGeminiSettingsFile(t *testing.T) {
	t.Parallel()
	_, w, err := mustGet(t, "gemini").WithConnectors(nil, testServers)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Files) != 1 {
		t.Fatalf("files: %v", w.Files)
	}
	for name, content := range w.Files {
		if got := w.Env["GEMINI_CLI_SYSTEM_SETTINGS_PATH"]; got != OutputDir+"/"+name {
			t.Errorf("GEMINI_CLI_SYSTEM_SETTINGS_PATH = %q, file %q", got, name)
		}
		var settings map[string]map[string]map[string]string
		if err := json.Unmarshal(content, &settings); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, content)
		}
		for _, s := range testServers {
			entry := settings["mcpServers"][s.Name]
			if entry["httpUrl"] != s.URL || len(entry) != 1 {
				t.Errorf("%s: server %s = %v, want only httpUrl %q", name, s.Name, entry, s.URL)
			}
		}
	}
}
