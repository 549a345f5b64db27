package config

import (
	"net/url"
	"slices"
	"strings"

	"github.com/agentrunner/agentrunner/preset"
	"gopkg.in/yaml.v3"
)

// Connectors: MCP servers agents may use, under `connectors:` of the routine and of an agent.
// Their key table and the checks that need more than one key, or the routine around them.

var connectorObj = newObject("connector", "connector",
	"One MCP server: url: for a remote streamable-HTTP one, reached through the run's egress proxy, which adds its credential; or image: for a local stdio one, which the runner starts beside the run for its agents. Exactly one of url and image.",
	field[Connector]{key: "url", doc: "Remote: the server's streamable-HTTP MCP endpoint, an absolute http(s) URL like https://mcp.linear.app/mcp.",
		schema: func(*schemaGen) map[string]any {
			return map[string]any{"type": "string", "format": "uri", "pattern": `^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]+`}
		},
		decode: func(d *decoder, _, v *yaml.Node, t *Connector) {
			if s, ok := d.str(v, "url"); ok {
				t.URL = s
				if msg := checkConnectorURL(s); msg != "" {
					d.errorf(v, "connector %q: url %s", t.Name, msg)
				}
			}
		}},
	field[Connector]{key: "secret", doc: "Remote: the routine secret (listed in the top-level secrets:) the egress proxy sends as the server's bearer token; agents never see it.",
		schema: func(*schemaGen) map[string]any { return map[string]any{"type": "string"} },
		decode: func(d *decoder, _, v *yaml.Node, t *Connector) {
			if s, ok := d.str(v, "secret"); ok {
				t.Secret = s
				checkEnvItem("secret")(d, v, s)
			}
		}},
	field[Connector]{key: "image", doc: "Local: the container image of a stdio MCP server, started as a sidecar for each run and bridged to streamable HTTP for the agents.",
		schema: func(*schemaGen) map[string]any { return map[string]any{"type": "string", "minLength": 1} },
		decode: func(d *decoder, _, v *yaml.Node, t *Connector) {
			if s, ok := d.str(v, "image"); ok {
				t.Image = s
				if strings.TrimSpace(s) == "" {
					d.errorf(v, "connector %q: image is empty; name the server's container image, like ghcr.io/acme/sentry-mcp:1.2", t.Name)
				}
			}
		}},
	argvField("command", "Local: the argv that starts the stdio server in its image, like [sentry-mcp, --stdio]; default: the image's own entrypoint and command. Never a shell string.",
		func(t *Connector) *[]string { return &t.Command }),
	envField("env", "Local: environment variables of the server's container (not of the agents).", func(t *Connector) *map[string]string { return &t.Env }),
	listField("secrets", "Local: routine secrets (listed in the top-level secrets:) the server's container receives as environment variables; agents never see them.", false,
		func(t *Connector) *[]string { return &t.Secrets }, checkEnvItem("secrets")),
	field[Connector]{key: "network", doc: "Local: the server's egress: none (default) or {allow: [host:port]}, through the runner's proxy. Never open.",
		schema: func(g *schemaGen) map[string]any {
			return map[string]any{"oneOf": []any{
				map[string]any{"type": "string", "enum": []any{NetworkNone}},
				g.ref(networkAllowObj)}}
		},
		decode: decodeConnectorNetwork},
	field[Connector]{key: "tools", doc: "The only tools agents may list and call, by name; default: every tool the server offers.",
		schema: func(*schemaGen) map[string]any {
			return map[string]any{"type": "array", "minItems": 1, "uniqueItems": true, "items": map[string]any{"type": "string", "minLength": 1}}
		},
		decode: decodeTools},
)

// connectorsField is `connectors:`, a mapping from connector name to connector, kept in file order.
func connectorsField[T any](doc string, p func(*T) *[]*Connector) field[T] {
	return field[T]{key: "connectors", doc: doc,
		schema: func(g *schemaGen) map[string]any {
			one := g.ref(connectorObj)
			// Exactly one of url and image, each with only its own keys.
			one["oneOf"] = []any{
				map[string]any{"required": []any{"url"},
					"properties": map[string]any{"image": false, "command": false, "env": false, "secrets": false, "network": false}},
				map[string]any{"required": []any{"image"},
					"properties": map[string]any{"url": false, "secret": false}},
			}
			return map[string]any{"type": "object",
				"propertyNames":        map[string]any{"pattern": identPattern},
				"additionalProperties": one}
		},
		decode: func(d *decoder, _, v *yaml.Node, t *T) {
			es, ok := d.mapping(v, "connectors", true)
			if !ok {
				return
			}
			cs := make([]*Connector, 0, es.len())
			for e := range es.all() {
				name := e.k.Value
				c := &Connector{Pos: d.pos(e.k), Name: name}
				if !isIdent(name) {
					d.errorf(e.k, "connector name %q is not valid: use letters, digits, _ and -, starting with a letter", name)
				}
				if r := d.resolve(e.v); r != nil && !isNull(r) && r.Kind != yaml.MappingNode {
					d.errorf(e.v, "connector %q must be a mapping: {url: https://...} for a remote server, or {image: ...} for a local one; got %s", name, describe(r))
				} else {
					connectorObj.decode(d, e.k, e.v, c, label{"connector", name}, connectorKeyHint)
				}
				cs = append(cs, c)
			}
			*p(t) = cs
		}}
}

// connectorKeyHint explains keys people carry over from other MCP client configurations.
func connectorKeyHint(key string) string {
	switch strings.ToLower(key) {
	case "token", "api-key", "api_key", "apikey", "auth", "authorization", "bearer", "headers":
		return "a remote server's credential is a routine secret named in secret:, which the egress proxy sends as its bearer token"
	case "args":
		return "command: [program, arguments...] holds the whole argv of a local server"
	case "type", "transport":
		return "the transport follows from url: (a remote streamable-HTTP server) or image: (a local stdio one)"
	}
	return ""
}

// argvField is a program and its arguments as a list, like [make, test]; never a shell string.
func argvField[T any](key, doc string, p func(*T) *[]string) field[T] {
	return field[T]{key: key, doc: doc,
		schema: func(*schemaGen) map[string]any {
			return map[string]any{"type": "array", "minItems": 1, "items": map[string]any{"type": []any{"string", "number", "boolean"}}}
		},
		decode: func(d *decoder, _, v *yaml.Node, t *T) {
			r := d.resolve(v)
			if r != nil && r.Kind == yaml.ScalarNode && r.Tag == "!!str" {
				d.errorf(v, "%s must be an argv list, not a shell string: write %s: [%s]; to use shell syntax, write %s: [sh, -c, \"...\"]", key, key, strings.Join(strings.Fields(r.Value), ", "), key)
				return
			}
			items, ok := d.seq(v, key, false)
			if !ok {
				return
			}
			if len(items) == 0 {
				d.errorf(v, "%s is empty; give the program and its arguments, like [make, test]", key)
			}
			for i, it := range items {
				if s, ok := d.textItem(it, key, i); ok {
					*p(t) = append(*p(t), s)
				}
			}
		}}
}

// checkConnectorURL says what is wrong with a remote connector's URL, or returns "".
func checkConnectorURL(s string) string {
	const like = "; write an absolute URL like https://mcp.example.com/mcp"
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return quoteShort(s) + " is not a valid URL" + like
	case u.Scheme != "http" && u.Scheme != "https":
		return quoteShort(s) + " must start with https:// (or http://)" + like
	case u.Host == "" || u.Hostname() == "":
		return quoteShort(s) + " has no host" + like
	case u.User != nil:
		return quoteShort(s) + " holds a user or password; name a routine secret in secret: instead, which the egress proxy sends as the bearer token"
	}
	return ""
}

// decodeConnectorNetwork reads a connector's `network:`, none or an allow list.
func decodeConnectorNetwork(d *decoder, k, v *yaml.Node, t *Connector) {
	if r := d.resolve(v); r != nil && r.Kind == yaml.ScalarNode && r.Tag == "!!str" && r.Value != NetworkNone {
		if r.Value == NetworkOpen {
			d.errorf(v, "connector %q: a connector's network is none or an allow list ({allow: [host:port, ...]}), not open; list the hosts the server needs", t.Name)
		} else {
			d.errorf(v, "connector %q: network must be none or {allow: [host:port, ...]}, got %q%s", t.Name, r.Value, suggestOnly(r.Value, []string{NetworkNone}))
		}
		return
	}
	t.Network = decodeNetwork(d, k, v)
}

// decodeTools reads a connector's `tools:`: names, none empty and none twice.
func decodeTools(d *decoder, _, v *yaml.Node, t *Connector) {
	items, ok := d.seq(v, "tools", false)
	if !ok {
		return
	}
	if len(items) == 0 {
		d.errorf(v, "connector %q: tools is empty, so agents could call no tool; list the tools they may call, or remove tools: to allow every tool", t.Name)
	}
	t.Tools = make([]string, 0, len(items))
	for i, it := range items {
		s, ok := d.strItem(it, "tools", i)
		if !ok {
			continue
		}
		switch {
		case strings.TrimSpace(s) == "":
			d.errorf(it, "connector %q: tools[%d] is empty; name a tool the server offers, like search_issues", t.Name, i)
		case slices.Contains(t.Tools, s):
			d.errorf(it, "connector %q lists tool %q twice in tools", t.Name, s)
		default:
			t.Tools = append(t.Tools, s)
		}
	}
}

// presetHasMCP reports whether the preset's tool can use MCP servers.
func presetHasMCP(name string) bool {
	p, ok := preset.Get(name)
	return ok && p.SupportsMCP()
}

// mcpPresets lists the presets that can use connectors, for messages.
func mcpPresets() string {
	var out []string
	for _, n := range preset.Names() {
		if presetHasMCP(n) {
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}

// checkConnectors checks each connector of the routine and of its agents on its own, and that
// no agent redefines a routine connector.
func (d *decoder) checkConnectors(r *Routine) {
	for _, c := range r.Connectors {
		d.checkConnector(r, c)
	}
	for _, a := range r.Agents {
		for _, c := range a.Connectors {
			d.checkConnector(r, c)
			if i := slices.IndexFunc(r.Connectors, func(rc *Connector) bool { return rc.Name == c.Name }); i >= 0 {
				d.errorAt(c.Pos, "agent %q: connector %q is already defined by the routine (line %d), and an agent's connectors add to the routine's; rename this one, or remove it to use the routine's",
					a.Name, c.Name, r.Connectors[i].Pos.Line)
			}
		}
	}
}

// localKeys are the connector keys that set up a local server's container.
var localKeys = []string{"command", "env", "secrets", "network"}

// checkConnector checks what needs more than one key of c: it is remote or local, with only
// that kind's keys, and names only secrets the routine lists.
func (d *decoder) checkConnector(r *Routine, c *Connector) {
	if !d.decoded(c) {
		return // not a mapping: reported while decoding
	}
	where := label{"connector", c.Name}
	ku, remote := d.key(c, "url")
	ki, local := d.key(c, "image")
	switch {
	case remote && local:
		d.errorf(ki.k, "%s has both url: (a remote MCP server) and image: (a local stdio one); keep one", where)
		return
	case !remote && !local:
		d.errorAt(c.Pos, "%s needs url: (a remote MCP server) or image: (a local stdio one)", where)
		return
	}
	if remote {
		for _, key := range localKeys {
			if k, ok := d.key(c, key); ok {
				hint := ""
				if key == "secrets" {
					hint = "; a remote server's credential is one secret, named in secret:, which the egress proxy sends as its bearer token"
				}
				d.errorf(k.k, "%s is remote (url: at line %d), so it takes no %s:, which sets up a local server's container (image:); remove it%s", where, ku.k.Line, key, hint)
			}
		}
	} else if k, ok := d.key(c, "secret"); ok {
		d.errorf(k.k, "%s is local (image: at line %d), so it takes no secret:, the bearer token of a remote server (url:); hand the server secrets as environment variables with secrets: [NAME]", where, ki.k.Line)
	}
	if c.Secret != "" {
		d.checkListedSecrets(r, where, c, "secret", []string{c.Secret})
	}
	d.checkListedSecrets(r, where, c, "secrets", c.Secrets)
}

// checkListedSecrets reports each secret of list, written under key on t, that the routine's
// secrets: does not list.
func (d *decoder) checkListedSecrets(r *Routine, where label, t any, key string, list []string) {
	if len(list) == 0 {
		return
	}
	ks, _ := d.key(t, key)
	items := d.resolveSeq(ks.v)
	for i, s := range list {
		if !slices.Contains(r.Secrets, s) {
			at := ks.v
			if i < len(items) {
				at = items[i]
			}
			d.errorf(at, "%s asks for secret %q, which the routine does not list; add it to the top-level secrets: list%s", where, s, suggestOnly(s, r.Secrets))
		}
	}
}

// checkAgentConnectors checks that agent a can reach the connectors it may use (the routine's
// and its own): its preset speaks MCP, and its network is not open.
func (d *decoder) checkAgentConnectors(r *Routine, a *Agent, keys entries) {
	cs := r.AgentConnectors(a)
	if len(cs) == 0 {
		return
	}
	where := label{"agent", a.Name}
	if a.Uses != "" && !presetHasMCP(a.Uses) {
		names := make([]string, len(cs))
		for i, c := range cs {
			names[i] = c.Name
		}
		at, hint := a.Pos, ""
		if k, ok := keys.get("connectors"); ok && len(a.Connectors) > 0 {
			at = d.pos(k.k)
		} else if k, ok := keys.get("uses"); ok {
			at = d.pos(k.k)
		}
		if len(r.Connectors) > 0 {
			hint = "; or move the routine's connectors to the agents that use them"
		}
		d.errorAt(at, "%s: %s has no MCP support, so it cannot use connectors (%s); use %s or a command%s", where, a.Uses, strings.Join(names, ", "), mcpPresets(), hint)
	}
	const open = "connectors are reached over the run's internal network, which an agent with network: open is not on; give the agent an allow list (network: {allow: [...]}) or none"
	if k, ok := keys.get("network"); ok {
		if a.Network.Mode == NetworkOpen {
			d.errorf(k.v, "%s: %s", where, open)
		}
	} else if def := r.Defaults.Network; def != nil && def.Mode == NetworkOpen {
		d.errorAt(a.Pos, "%s: %s (it has network: open from defaults:, so set network: on the agent)", where, open)
	}
}

// applyConnectorDefaults gives local connectors their network (none) and puts every agent
// with connectors on the run's internal network: none becomes an allow list with nothing on it.
func applyConnectorDefaults(r *Routine) {
	for _, a := range r.Agents {
		for _, c := range a.Connectors {
			defaultConnectorNetwork(c)
		}
		if a.Network.Mode == NetworkNone && (len(r.Connectors) > 0 || len(a.Connectors) > 0) {
			a.Network = Network{Pos: a.Network.Pos, Mode: NetworkAllow}
		}
	}
	for _, c := range r.Connectors {
		defaultConnectorNetwork(c)
	}
}

func defaultConnectorNetwork(c *Connector) {
	if c.Image != "" && c.Network == nil {
		c.Network = &Network{Pos: c.Pos, Mode: NetworkNone}
	}
}
