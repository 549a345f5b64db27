package preset

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// MCPServer is one connector as an agent reaches it: a streamable-HTTP MCP endpoint.
type MCPServer struct {
	Name string // the connector's name in the routine (letters, digits, _ and -)
	URL  string
}

// MCPConfigFile is $AGENT_MCP_CONFIG inside the container: every agent with connectors gets
// it, in the mcpServers format Claude Code's --mcp-config reads.
const MCPConfigFile = OutputDir + "/mcp.json"

// EnvMCPConfig is the environment variable that holds MCPConfigFile's path.
const EnvMCPConfig = "AGENT_MCP_CONFIG"

// MCPConfig returns the content of MCPConfigFile for servers:
// {"mcpServers": {"<name>": {"type": "http", "url": "<url>"}}} (indented JSON, names sorted).
// A name given twice keeps its last URL; WithConnectors rejects such a list.
func MCPConfig(servers []MCPServer) []byte {
	type server struct {
		Type string `json:"type"`
		URL  string `json:"url"`
	}
	m := make(map[string]server, len(servers))
	for _, s := range servers {
		m[s.Name] = server{Type: "http", URL: s.URL}
	}
	return indentJSON(map[string]any{"mcpServers": m})
}

// Wiring is what a preset adds for connectors: flags put in before the prompt's "--"
// separator (like WithBaseURLs does), environment, and files to write into the output
// directory (name relative to OutputDir → content).
type Wiring struct {
	Args  []string
	Env   map[string]string
	Files map[string][]byte
}

// SupportsMCP reports whether the preset's CLI can use MCP servers (aider cannot).
func (p *Preset) SupportsMCP() bool {
	return p.mcp != nil
}

// WithConnectors returns argv with the preset's connector flags put in before the "--" that
// ends its options (argv unchanged when the preset takes none or argv has no "--"), and the
// Wiring's Env and Files. It returns an error for a preset without MCP support and a
// non-empty servers, and for a server whose name is not letters, digits, _ and -, whose name
// repeats another's, or whose URL is not an absolute http(s) URL. servers empty: argv
// unchanged, empty Wiring.
//
// Wiring.Args holds the flags even when argv had no "--" to put them in front of.
func (p *Preset) WithConnectors(argv []string, servers []MCPServer) ([]string, Wiring, error) {
	if len(servers) == 0 {
		return argv, Wiring{}, nil
	}
	if p.mcp == nil {
		return argv, Wiring{}, fmt.Errorf("preset %s: %s has no MCP support, so it cannot use connectors", p.Name, p.Name)
	}
	if err := checkMCPServers(servers); err != nil {
		return argv, Wiring{}, fmt.Errorf("preset %s: %w", p.Name, err)
	}
	// Sorted like MCPConfig, so argv and files do not depend on the caller's order.
	sorted := slices.Clone(servers)
	slices.SortStableFunc(sorted, func(a, b MCPServer) int { return strings.Compare(a.Name, b.Name) })
	w := p.mcp(sorted)
	sep := optionsEnd(argv)
	if len(w.Args) == 0 || sep < 0 {
		return argv, w, nil
	}
	out := make([]string, 0, len(argv)+len(w.Args))
	out = append(out, argv[:sep]...)
	out = append(out, w.Args...)
	return append(out, argv[sep:]...), w, nil
}

// optionsEnd finds the "--" that ends argv's options. The presets end argv with "--" and the
// prompt, so that one is taken first: an option value (append-system-prompt, model) or the
// prompt may itself be "--".
func optionsEnd(argv []string) int {
	if n := len(argv); n >= 2 && argv[n-2] == "--" {
		return n - 2
	}
	return slices.Index(argv, "--")
}

// mcpNameRE is the connector-name syntax. Names end up in codex's dotted -c key, so a "."
// or "=" would change which setting is written.
var mcpNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func checkMCPServers(servers []MCPServer) error {
	seen := make(map[string]bool, len(servers))
	for _, s := range servers {
		if !mcpNameRE.MatchString(s.Name) {
			return fmt.Errorf("connector name %q: want letters, digits, _ and - only", s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("connector %q is given twice", s.Name)
		}
		seen[s.Name] = true
		u, err := url.Parse(s.URL)
		if err != nil {
			return fmt.Errorf("connector %s: %w", s.Name, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("connector %s: URL %q is not an absolute http or https URL", s.Name, s.URL)
		}
	}
	return nil
}

// indentJSON encodes v as indented JSON with a final newline. HTML escaping is off so a URL's
// "&" stays readable in the file.
func indentJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		// Maps of strings always encode; reaching this is a programming error.
		panic("preset: encode JSON: " + err.Error())
	}
	return b.Bytes()
}

// tomlString quotes s as a TOML basic string. strconv.Quote is not used: its \x escapes are
// not TOML. Invalid UTF-8 becomes U+FFFD, since TOML text must be UTF-8.
func tomlString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
