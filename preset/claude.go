package preset

import (
	"fmt"
	"strings"
)

// claude-code: Claude Code in print (headless) mode.
//
// Sources (Claude Code 2.x):
//   - CLI reference and headless mode, https://code.claude.com/docs/en/cli-reference and
//     https://docs.claude.com/en/docs/claude-code/headless: -p/--print, --output-format
//     text|json|stream-json, --model, --max-turns, --allowedTools/--disallowedTools ("space-
//     separated list, or a string of comma-separated tools"), --append-system-prompt,
//     --permission-mode.
//   - Permission modes, https://code.claude.com/docs/en/permission-modes: default,
//     acceptEdits, plan, auto, dontAsk, bypassPermissions; "the same --permission-mode flag
//     works for -p non-interactive runs"; bypassPermissions is for "isolated containers and
//     VMs only".
//   - Root guard: bypass mode exits with "--dangerously-skip-permissions cannot be used with
//     root/sudo privileges" unless IS_SANDBOX=1 (anthropics/claude-code#3490).
//   - ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY: Claude Code settings, environment variables.
//   - MCP: CLI reference, --mcp-config "Load MCP servers from JSON files or strings (space-
//     separated)"; https://code.claude.com/docs/en/mcp, a streamable-HTTP server is
//     {"mcpServers": {"<name>": {"type": "http", "url": "..."}}}, the format of MCPConfig.
//
// Connectors: --mcp-config MCPConfigFile, the file the runner writes for every agent with
// connectors, so claude-code needs no file of its own. --strict-mcp-config is left off: it
// would hide the MCP servers the user or the repository (.mcp.json) configured.
//
// Default permission mode: bypassPermissions. Headless -p denies every tool call that would
// prompt (file edits, Bash), and the run still exits 0 with the refusals listed in
// permission_denials, so the "safe" default silently does nothing. Here the container is the
// security boundary (non-root, no capabilities, no network unless allowed, a throwaway
// workspace, no runner credentials), which is the setting the docs reserve bypass mode for.
// A routine that wants less sets permission-mode (acceptEdits, dontAsk + allowed-tools, plan).
func init() {
	register(&Preset{
		Name:       "claude-code",
		KeyEnv:     anthropicAPI.KeyEnv,
		BaseURLEnv: "ANTHROPIC_BASE_URL",
		Doc:        "claude -p --output-format json (Claude Code 2.x CLI reference)",
		options: []option{
			{name: "model", kind: kString},
			{name: "max-turns", kind: kPosInt},
			{name: "permission-mode", kind: kEnum,
				enum: []string{"default", "acceptEdits", "plan", "auto", "dontAsk", "bypassPermissions"}},
			{name: "allowed-tools", kind: kStrings},
			{name: "disallowed-tools", kind: kStrings},
			{name: "append-system-prompt", kind: kString},
		},
		apis:     func(opts) []API { return []API{claudeAPI} },
		build:    buildClaude,
		parse:    parseClaude,
		exitText: map[int]string{1: "claude reported an error"},
		mcp:      claudeMCP,
	})
}

var claudeAPI = anthropicAPI.withBaseURLEnv("ANTHROPIC_BASE_URL")

// ClaudeDefaultPermissionMode is the mode used when `with:` sets none; see the file comment.
const ClaudeDefaultPermissionMode = "bypassPermissions"

func buildClaude(prompt string, w opts, o Options) (Command, error) {
	argv := []string{"claude", "-p", "--output-format", "json"}
	if m := str(w, "model"); m != "" {
		argv = append(argv, "--model", m)
	}
	if n, ok := integer(w, "max-turns"); ok {
		argv = append(argv, "--max-turns", fmt.Sprint(n))
	}
	mode := str(w, "permission-mode")
	if mode == "" {
		mode = ClaudeDefaultPermissionMode
	}
	argv = append(argv, "--permission-mode", mode)
	// One comma-joined value: the flags are variadic, and a list of separate words would
	// swallow whatever argument came next.
	if t := strs(w, "allowed-tools"); len(t) > 0 {
		argv = append(argv, "--allowedTools", strings.Join(t, ","))
	}
	if t := strs(w, "disallowed-tools"); len(t) > 0 {
		argv = append(argv, "--disallowedTools", strings.Join(t, ","))
	}
	if s := str(w, "append-system-prompt"); s != "" {
		argv = append(argv, "--append-system-prompt", s)
	}
	// "--" ends the options, so a prompt that starts with "-" (it may come from event text)
	// is never read as a flag: without it claude exits with "unknown option"
	// (anthropics/claude-code#25925); "--" verified with claude 2.1.161 in alamops/agetor#44.
	argv = append(argv, "--", prompt)

	env := map[string]string{}
	if mode == "bypassPermissions" {
		// Lets the CLI start when the sandbox is configured to run as root; no effect otherwise.
		env["IS_SANDBOX"] = "1"
	}
	baseURLEnv(env, []API{claudeAPI}, o)
	return Command{Argv: argv, Env: env}, nil
}

// parseClaude reads the result object of --output-format json (also the last line of
// stream-json). Shape: {"type":"result","subtype":"success"|"error_max_turns"|
// "error_during_execution"|"error_max_budget_usd"|...,"is_error":bool,"result":"...",
// "session_id":"...","num_turns":N,"total_cost_usd":F,"usage":{"input_tokens":N,
// "cache_creation_input_tokens":N,"cache_read_input_tokens":N,"output_tokens":N},
// "permission_denials":[{"tool_name":"Edit",...}],"errors":[...]}. A failed API call comes
// as subtype "success" with is_error true and the message in result. Older versions named
// the cost "cost_usd".
func parseClaude(out []byte) (*Result, error) {
	objs := objects(out)
	var res jobj
	stream := false
	for _, o := range objs {
		switch o.str("type") {
		case "result":
			res = o
		case "system", "assistant", "user":
			stream = true
		}
	}
	if res == nil {
		r := &Result{}
		if stream {
			// stream-json that never reached its result line: the CLI died or was killed.
			for _, o := range objs {
				if sid := o.str("session_id"); sid != "" {
					r.SessionID = sid
				}
			}
			return r, fmt.Errorf("%w: the stream ended before its result event (truncated?)", errNoResult)
		}
		if len(strings.TrimSpace(string(out))) == 0 {
			return r, errNoOutput
		}
		return r, fmt.Errorf("%w: no JSON object with \"type\":\"result\"; last output: %s",
			errNoResult, tail(string(out), 3, 300))
	}

	u := res.obj("usage")
	r := &Result{
		SessionID: res.str("session_id"),
		Final:     res.str("result"),
		Turns:     res.count("num_turns"),
		CostUSD:   res.num("total_cost_usd"),
		InputTokens: addCount(addCount(u.count("input_tokens"), u.count("cache_creation_input_tokens")),
			u.count("cache_read_input_tokens")),
		OutputTokens: u.count("output_tokens"),
	}
	if r.CostUSD == 0 {
		r.CostUSD = res.num("cost_usd")
	}
	for _, d := range res.arr("permission_denials") {
		if m, ok := d.(map[string]any); ok {
			if n := jobj(m).str("tool_name"); n != "" {
				r.Denied = append(r.Denied, n)
			}
		}
	}

	subtype := res.str("subtype")
	isErr := res.boolean("is_error")
	r.OK = !isErr && (subtype == "success" || subtype == "")
	if r.OK {
		return r, nil
	}
	var msgs []string
	for _, e := range res.arr("errors") {
		if s, ok := e.(string); ok && s != "" {
			msgs = append(msgs, s)
		} else if m, ok := e.(map[string]any); ok {
			if s := jobj(m).str("message"); s != "" {
				msgs = append(msgs, s)
			}
		}
	}
	switch {
	case subtype != "" && subtype != "success":
		r.Error = subtype
		if len(msgs) > 0 {
			r.Error += ": " + strings.Join(msgs, "; ")
		}
	case len(msgs) > 0:
		r.Error = strings.Join(msgs, "; ")
	case r.Final != "":
		r.Error = tail(r.Final, 5, 500)
	default:
		r.Error = "claude reported an error without a message"
	}
	return r, nil
}

// claudeMCP points claude at MCPConfigFile. --mcp-config takes several values, but
// WithConnectors puts it right before "--", which ends the list, so it cannot swallow the
// prompt.
func claudeMCP([]MCPServer) Wiring {
	return Wiring{Args: []string{"--mcp-config", MCPConfigFile}}
}
