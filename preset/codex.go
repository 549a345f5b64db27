package preset

import (
	"fmt"
	"strconv"
	"strings"
)

// codex: OpenAI Codex CLI, `codex exec` (non-interactive).
//
// Sources (codex-rs 0.1xx, 2026):
//   - openai/codex docs/exec.md and https://developers.openai.com/codex/noninteractive:
//     `--json` streams JSONL events (thread.started, turn.started, turn.completed with usage,
//     turn.failed with error, item.started/updated/completed; item types agent_message,
//     reasoning, command_execution, file_change, mcp_tool_call, web_search); "Codex requires
//     a Git repository ... use --skip-git-repo-check"; CODEX_API_KEY is read by codex exec;
//     --ephemeral skips session rollout files.
//   - CLI reference, https://developers.openai.com/codex/cli/reference: --model/-m,
//     --sandbox/-s read-only|workspace-write|danger-full-access, --config/-c key=value (TOML
//     value). --full-auto is deprecated in favour of --sandbox workspace-write.
//   - Base URL: the OPENAI_BASE_URL variable was deprecated for the `openai_base_url` config
//     key (openai/codex#12031) and then removed (openai/codex#16720, April 2026), so the
//     base URL goes in as `-c openai_base_url=...`; the variable is set too for older CLIs.
//   - MCP: docs/config.md and https://developers.openai.com/codex/mcp, a streamable-HTTP
//     server is `[mcp_servers.<name>] url = "..."`; without auth it needs no
//     experimental_use_rmcp_client since openai/codex#4689 (October 2025). `-c key=value`
//     splits the key on "." and parses the value as TOML, taking the raw text with its quotes
//     trimmed when that fails (codex-rs config_override.rs); it overrides config.toml for
//     that run.
//
// Connectors: one `-c mcp_servers.<name>.url="<url>"` per server, because codex exec has no
// flag that reads an MCP config file and -c leaves the user's config.toml untouched.
//
// Default sandbox: danger-full-access. Codex's own sandbox (bubblewrap or Landlock) needs user
// namespaces or Landlock, which a hardened container (no capabilities, default seccomp,
// no-new-privileges) does not give it: every command then fails ("bwrap: No permissions to
// create a new namespace", openai/codex#9292, #23762). codex docs/config.md calls
// danger-full-access "reasonable ... in an environment that provides its own sandboxing (such
// as a Docker container)", which is what the runner's sandbox is.
//
// Stdin: codex exec appends piped stdin to the prompt and waits for EOF when stdin is not a
// terminal. The sandbox does not attach stdin, so Docker connects it to /dev/null, which gives
// EOF at once: nothing else is needed.
func init() {
	register(&Preset{
		Name:       "codex",
		KeyEnv:     codexAPI.KeyEnv,
		BaseURLEnv: "OPENAI_BASE_URL",
		Doc:        "codex exec --json (Codex CLI reference, docs/exec.md)",
		options: []option{
			{name: "model", kind: kString},
			{name: "sandbox", kind: kEnum, enum: []string{"read-only", "workspace-write", "danger-full-access"}},
			{name: "ephemeral", kind: kBool},
		},
		apis:        func(opts) []API { return []API{codexAPI} },
		build:       buildCodex,
		baseURLArgs: codexBaseURLArgs,
		parse:       parseCodex,
		exitText:    map[int]string{1: "codex reported an error"},
		mcp:         codexMCP,
	})
}

var codexAPI = openaiAPI.withKeyEnv("OPENAI_API_KEY", "CODEX_API_KEY").withBaseURLEnv("OPENAI_BASE_URL")

// CodexDefaultSandbox is the --sandbox used when `with:` sets none; see the file comment.
const CodexDefaultSandbox = "danger-full-access"

func buildCodex(prompt string, w opts, o Options) (Command, error) {
	argv := []string{"codex", "exec", "--json", "--skip-git-repo-check"}
	sb := str(w, "sandbox")
	if sb == "" {
		sb = CodexDefaultSandbox
	}
	argv = append(argv, "--sandbox", sb)
	if m := str(w, "model"); m != "" {
		argv = append(argv, "--model", m)
	}
	if e, _ := boolean(w, "ephemeral"); e {
		argv = append(argv, "--ephemeral")
	}
	env := map[string]string{}
	argv = append(argv, codexBaseURLArgs(o.BaseURL)...)
	baseURLEnv(env, []API{codexAPI}, o)
	argv = append(argv, "--", prompt)
	return Command{Argv: argv, Env: env}, nil
}

// parseCodex reads the `codex exec --json` event stream. Success is a stream whose last turn
// event is turn.completed; turn.failed, or error events with no completed turn after them,
// are failures; a stream with neither is truncated. Usage is summed over turn.completed
// events (input_tokens already includes cached_input_tokens). Codex reports no cost. Turns
// counts turn events (one per exec prompt), not model calls.
func parseCodex(out []byte) (*Result, error) {
	r := &Result{}
	var (
		sawEvent, done, failed bool
		lastErr                string
	)
	for _, o := range objects(out) {
		typ := o.str("type")
		if !strings.Contains(typ, ".") && typ != "error" {
			continue // not a codex event (a log line that happens to be JSON)
		}
		sawEvent = true
		switch typ {
		case "thread.started":
			r.SessionID = o.str("thread_id")
		case "turn.started":
			done = false
		case "turn.completed":
			r.Turns++
			u := o.obj("usage")
			r.InputTokens = addCount(r.InputTokens, u.count("input_tokens"))
			r.OutputTokens = addCount(r.OutputTokens, u.count("output_tokens"))
			done, failed, lastErr = true, false, ""
		case "turn.failed":
			r.Turns++
			u := o.obj("usage")
			r.InputTokens = addCount(r.InputTokens, u.count("input_tokens"))
			r.OutputTokens = addCount(r.OutputTokens, u.count("output_tokens"))
			done, failed = true, true
			lastErr = o.obj("error").str("message")
			if lastErr == "" {
				lastErr = "turn failed"
			}
		case "error":
			// Transport-level failure; codex may retry and still complete the turn.
			if m := o.str("message"); m != "" {
				lastErr = m
			} else {
				lastErr = "error event without a message"
			}
		case "item.completed":
			it := o.obj("item")
			// "type" in current releases, "item_type" in early --experimental-json ones.
			itType := it.str("type")
			if itType == "" {
				itType = it.str("item_type")
			}
			if itType == "agent_message" || itType == "assistant_message" {
				r.Final = it.str("text")
			}
		}
	}
	switch {
	case !sawEvent:
		if len(strings.TrimSpace(string(out))) == 0 {
			return r, errNoOutput
		}
		return r, fmt.Errorf("%w: no codex JSON events; last output: %s", errNoResult, tail(string(out), 3, 300))
	case failed:
		r.Error = lastErr
	case done && lastErr == "":
		r.OK = true
	case lastErr != "":
		r.Error = lastErr
	default:
		return r, fmt.Errorf("%w: the event stream ended before turn.completed (truncated?)", errNoResult)
	}
	return r, nil
}

// codexBaseURLArgs moves the built-in OpenAI provider to the proxy's key endpoint.
func codexBaseURLArgs(urls map[Provider]string) []string {
	u := urls[OpenAI]
	if u == "" {
		return nil
	}
	// A TOML basic string; strconv.Quote's escapes are valid TOML for the URLs we pass.
	return []string{"-c", "openai_base_url=" + strconv.Quote(u)}
}

// codexMCP sets each server's url in codex's config. A URL with a quote or backslash only
// wrapped in quotes would not parse as TOML, and codex's fallback would then mangle it, so it
// is escaped.
func codexMCP(servers []MCPServer) Wiring {
	args := make([]string, 0, 2*len(servers))
	for _, s := range servers {
		args = append(args, "-c", "mcp_servers."+s.Name+".url="+tomlString(s.URL))
	}
	return Wiring{Args: args}
}
