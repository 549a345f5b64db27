package preset

import (
	"fmt"
	"sort"
	"strings"
)

// gemini: Google Gemini CLI in headless mode.
//
// Sources (gemini-cli 0.x, google-gemini/gemini-cli docs/cli/headless.md and
// docs/cli/cli-reference.md, packages/core/src/output/types.ts,
// packages/core/src/telemetry/uiTelemetry.ts):
//   - -p/--prompt "Forces non-interactive mode"; --output-format/-o text|json|stream-json;
//     --model/-m; --approval-mode default|auto_edit|yolo|plan (--yolo/-y is the deprecated
//     spelling and may not be combined with --approval-mode).
//   - JSON output: {"session_id", "response", "stats": SessionMetrics, "error": {"type",
//     "message", "code"}}; SessionMetrics.models[name] = {api: {totalRequests, totalErrors,
//     totalLatencyMs}, tokens: {input, prompt, candidates, total, cached, thoughts, tool}}.
//   - Exit codes: 0 success, 1 general error, 41 authentication, 42 input, 52 configuration,
//     53 turn limit, 54 fatal tool error, 130 cancelled.
//   - GOOGLE_GEMINI_BASE_URL is read by the @google/genai SDK the CLI uses (root URL; the SDK
//     appends /v1beta); google-gemini/gemini-cli#6746, #2899. A cached Google login can take
//     precedence over it, so run with GEMINI_API_KEY only.
//   - MCP: docs/tools/mcp-server.md, servers come from `mcpServers` in the settings files;
//     `httpUrl` is the streamable-HTTP transport (`url` is SSE). docs/get-started/
//     configuration.md: the system settings file overrides the user and project files, and
//     GEMINI_CLI_SYSTEM_SETTINGS_PATH moves it.
//
// Connectors: the CLI has no flag that defines MCP servers, so the Wiring has a settings file
// (OutputDir/gemini-settings.json) with them and points GEMINI_CLI_SYSTEM_SETTINGS_PATH at it.
// The system file is used because the user file lives in the image's home and the project
// file in the workspace, where it would show up in the agent's patch. It replaces a system
// settings file the image may have at /etc/gemini-cli/settings.json. "trust" is not set, so
// the routine's approval-mode decides on MCP tool calls as on built-in ones (the default,
// yolo, approves them).
//
// The prompt is passed as --prompt=<text> so a prompt starting with "-" stays a value.
// Default approval mode: yolo, because headless runs cannot answer approval prompts (tools
// needing one fail) and the container is the sandbox, as for claude-code.
func init() {
	register(&Preset{
		Name:       "gemini",
		KeyEnv:     geminiCLIAPI.KeyEnv,
		BaseURLEnv: "GOOGLE_GEMINI_BASE_URL",
		Doc:        "gemini --output-format json --prompt=... (gemini-cli headless reference)",
		options: []option{
			{name: "model", kind: kString},
			{name: "approval-mode", kind: kEnum, enum: []string{"default", "auto_edit", "yolo", "plan"}},
		},
		apis:  func(opts) []API { return []API{geminiCLIAPI} },
		build: buildGemini,
		parse: parseGemini,
		exitText: map[int]string{
			1: "general error", 41: "authentication error", 42: "input error",
			52: "configuration error", 53: "turn limit exceeded", 54: "fatal tool execution error",
			130: "cancelled",
		},
		mcp: geminiMCP,
	})
}

var geminiCLIAPI = geminiAPI.withBaseURLEnv("GOOGLE_GEMINI_BASE_URL")

// GeminiDefaultApprovalMode is the --approval-mode used when `with:` sets none.
const GeminiDefaultApprovalMode = "yolo"

func buildGemini(prompt string, w opts, o Options) (Command, error) {
	mode := str(w, "approval-mode")
	if mode == "" {
		mode = GeminiDefaultApprovalMode
	}
	argv := []string{"gemini", "--output-format", "json", "--approval-mode", mode}
	if m := str(w, "model"); m != "" {
		argv = append(argv, "--model", m)
	}
	argv = append(argv, "--prompt="+prompt)
	env := map[string]string{}
	baseURLEnv(env, []API{geminiCLIAPI}, o)
	return Command{Argv: argv, Env: env}, nil
}

// parseGemini reads the last JSON object of --output-format json that has response, stats or
// error. The CLI pretty-prints it over many lines; warnings may precede it.
func parseGemini(out []byte) (*Result, error) {
	var res jobj
	for _, o := range objects(out) {
		// Top-level "type" marks another CLI's event (claude, codex, gemini stream-json).
		if !o.has("type") && (o.has("response") || o.has("stats") || o.has("error")) {
			res = o
		}
	}
	if res == nil {
		if len(strings.TrimSpace(string(out))) == 0 {
			return &Result{}, errNoOutput
		}
		return &Result{}, fmt.Errorf("%w: no gemini JSON output; last output: %s", errNoResult, tail(string(out), 3, 300))
	}
	r := &Result{SessionID: res.str("session_id"), Final: res.str("response")}
	models := res.obj("stats").obj("models")
	names := make([]string, 0, len(models))
	for n := range models {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		m, _ := models[n].(map[string]any)
		mt := jobj(m)
		t := mt.obj("tokens")
		// prompt counts every prompt token, cached ones included; thoughts are billed output.
		r.InputTokens = addCount(r.InputTokens, t.count("prompt"))
		r.OutputTokens = addCount(r.OutputTokens, addCount(t.count("candidates"), t.count("thoughts")))
		r.Turns = addCount(r.Turns, mt.obj("api").count("totalRequests"))
	}
	if v, ok := res["error"]; ok && v != nil {
		r.Error = geminiError(res)
		return r, nil
	}
	r.OK = true
	return r, nil
}

func geminiError(res jobj) string {
	e := res.obj("error")
	if e == nil {
		if s := res.str("error"); s != "" {
			return s
		}
		return "gemini reported an error"
	}
	msg := e.str("message")
	if msg == "" {
		msg = "gemini reported an error without a message"
	}
	if t := e.str("type"); t != "" {
		msg = t + ": " + msg
	}
	switch c := e["code"].(type) {
	case string:
		if c != "" {
			msg += " (code " + c + ")"
		}
	case float64:
		msg += fmt.Sprintf(" (code %v)", c)
	}
	return msg
}

// geminiSettingsFile is the settings file of geminiMCP, relative to OutputDir.
const geminiSettingsFile = "gemini-settings.json"

func geminiMCP(servers []MCPServer) Wiring {
	type server struct {
		HTTPURL string `json:"httpUrl"`
	}
	m := make(map[string]server, len(servers))
	for _, s := range servers {
		m[s.Name] = server{HTTPURL: s.URL}
	}
	return Wiring{
		Env:   map[string]string{"GEMINI_CLI_SYSTEM_SETTINGS_PATH": OutputDir + "/" + geminiSettingsFile},
		Files: map[string][]byte{geminiSettingsFile: indentJSON(map[string]any{"mcpServers": m})},
	}
}
