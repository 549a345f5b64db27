package preset

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// aider: Aider in one-shot scripting mode.
//
// Sources (aider 0.8x): https://aider.chat/docs/scripting.html and
// https://aider.chat/docs/config/options.html (Aider-AI/aider aider/args.py):
//   - --message-file FILE "send the message in the file, process the reply, then exit";
//     --yes-always; --auto-commits/--no-auto-commits; --dirty-commits/--no-dirty-commits;
//     --gitignore/--no-gitignore ("adding .aider* to .gitignore"); --pretty/--no-pretty;
//     --stream/--no-stream; --check-update/--no-check-update; --show-model-warnings/
//     --no-show-model-warnings; --analytics/--no-analytics (without either, aider may ask to
//     opt in, and --yes-always would answer yes); --chat-history-file; --input-history-file;
//     --model; --edit-format.
//   - Keys: --openai-api-key reads OPENAI_API_KEY, --anthropic-api-key ANTHROPIC_API_KEY,
//     other providers through litellm (GEMINI_API_KEY). Base URLs: --openai-api-base reads
//     OPENAI_API_BASE; litellm reads ANTHROPIC_API_BASE for Anthropic (Aider-AI/aider#1182).
//     litellm has no dependable base-URL variable for Gemini, so none is offered.
//   - Usage line after each model call (aider/coders/base_coder.py): "Tokens: 12k sent, 1.2k
//     cache write, 3.4k cache hit, 345 received. Cost: $0.05 message, $0.12 session."; counts
//     are rounded ("1.2k", "12k").
//   - MCP: none of the options above configures an MCP client, and the docs name none, so
//     SupportsMCP is false and WithConnectors refuses connectors for aider.
//
// Aider has no structured output. Its Result comes from the exit code (Evaluate) and the last
// lines of output: the usage lines give tokens, cost and turns, and a litellm error after the
// last usage line (or no usage line at all) means the model call failed, which aider reports
// with exit code 0.
//
// The prompt is read from PromptFile (the sandbox writes it there); the prompt argument of
// Command is not put on the command line. History files go to the output dir and /tmp so they
// do not show up in the agent's patch; the repo-map cache cannot be moved, hence Scratch.
func init() {
	register(&Preset{
		Name:       "aider",
		KeyEnv:     keysOf(aiderAPIs(nil)),
		BaseURLEnv: "",
		Scratch:    []string{".aider.tags.cache.v*/"},
		Doc:        "aider --message-file /agent/out/prompt.md --yes-always --no-auto-commits (aider options reference)",
		options: []option{
			{name: "model", kind: kString},
			{name: "edit-format", kind: kString},
		},
		apis:     aiderAPIs,
		build:    buildAider,
		parse:    parseAider,
		exitText: map[int]string{1: "aider reported an error"},
	})
}

var (
	aiderAnthropic = anthropicAPI.withBaseURLEnv("ANTHROPIC_API_BASE")
	aiderOpenAI    = openaiAPI.withBaseURLEnv("OPENAI_API_BASE")
	aiderGemini    = geminiAPI
)

// aiderAPIs maps aider's --model to its API. Without a model aider picks one from whichever
// key is present, so every supported API is listed. Names follow litellm: "provider/model",
// or a bare name aider knows (sonnet, gpt-4o, ...).
func aiderAPIs(w opts) []API {
	m := strings.ToLower(str(w, "model"))
	if m == "" {
		return []API{aiderAnthropic, aiderOpenAI, aiderGemini}
	}
	prov, name, hasProv := strings.Cut(m, "/")
	if !hasProv {
		name, prov = m, ""
	}
	switch {
	case prov == "anthropic" || prov == "" && containsAny(name, "claude", "sonnet", "opus", "haiku"):
		return []API{aiderAnthropic}
	case prov == "gemini" || prov == "" && strings.Contains(name, "gemini"):
		return []API{aiderGemini}
	case prov == "openai" || prov == "" && hasAnyPrefix(name, "gpt", "o1", "o3", "o4", "chatgpt", "codex", "4o", "4-turbo"):
		return []API{aiderOpenAI}
	}
	return nil
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

func hasAnyPrefix(s string, pres ...string) bool {
	for _, x := range pres {
		if strings.HasPrefix(s, x) {
			return true
		}
	}
	return false
}

func buildAider(_ string, w opts, o Options) (Command, error) {
	argv := []string{
		"aider",
		"--message-file", PromptFile,
		"--yes-always",
		"--no-auto-commits",
		"--no-dirty-commits",
		"--no-gitignore",
		"--no-pretty",
		"--no-stream",
		"--no-check-update",
		"--no-show-model-warnings",
		"--no-analytics",
		"--chat-history-file", OutputDir + "/aider.chat.history.md",
		"--input-history-file", "/tmp/aider.input.history",
	}
	if m := str(w, "model"); m != "" {
		argv = append(argv, "--model", m)
	}
	if f := str(w, "edit-format"); f != "" {
		argv = append(argv, "--edit-format", f)
	}
	env := map[string]string{}
	baseURLEnv(env, aiderAPIs(w), o)
	return Command{Argv: argv, Env: env}, nil
}

var (
	aiderTokensRE = regexp.MustCompile(`^Tokens: ([0-9.]+[kKmM]?) sent\b(.*)$`)
	aiderRecvRE   = regexp.MustCompile(`([0-9.]+[kKmM]?) (?:received|Total)\b`)
	aiderCostRE   = regexp.MustCompile(`Cost: \$([0-9.]+) message, \$([0-9.]+) session`)
	// Model-call failures as aider prints them: litellm exception names, or aider's own
	// wording for them.
	aiderErrRE = regexp.MustCompile(`^(litellm\.[A-Za-z]*Error\b|[A-Za-z.]*(AuthenticationError|NotFoundError|BadRequestError|APIConnectionError|RateLimitError|ServiceUnavailableError|InternalServerError|ContextWindowExceededError|PermissionDeniedError)\b|Traceback \(most recent call last\)|The API provider has rate limited you|Unable to (?:send|reach) |Model .* is not a valid model|API key .*(?:missing|not set|invalid))`)
)

// parseTokenCount reads aider's rounded counts: "345", "1.2k", "12k".
func parseTokenCount(s string) int {
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1e3, s[:len(s)-1]
	case strings.HasSuffix(s, "m"), strings.HasSuffix(s, "M"):
		mult, s = 1e6, s[:len(s)-1]
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return clampCount(f * mult)
}

func parseAider(out []byte) (*Result, error) {
	text := strings.ReplaceAll(string(out), "\r\n", "\n")
	if strings.TrimSpace(text) == "" {
		return &Result{}, errNoOutput
	}
	lines := strings.Split(text, "\n")
	r := &Result{}
	lastUsage, lastErr := -1, -1
	errLine := ""
	for i, raw := range lines {
		l := strings.TrimSpace(raw)
		if m := aiderTokensRE.FindStringSubmatch(l); m != nil {
			lastUsage = i
			r.Turns++
			r.InputTokens = addCount(r.InputTokens, parseTokenCount(m[1]))
			if rm := aiderRecvRE.FindStringSubmatch(m[2]); rm != nil {
				r.OutputTokens = addCount(r.OutputTokens, parseTokenCount(rm[1]))
			}
			if cm := aiderCostRE.FindStringSubmatch(m[2]); cm != nil {
				// The session figure is cumulative: the last one is the run's cost.
				if f, err := strconv.ParseFloat(cm[2], 64); err == nil && f >= 0 && f < 1e9 {
					r.CostUSD = f
				}
			}
			continue
		}
		if aiderErrRE.MatchString(l) {
			lastErr, errLine = i, l
		}
	}
	end := len(lines)
	if lastUsage >= 0 {
		end = lastUsage
	}
	r.Final = tail(strings.Join(lines[:end], "\n"), 20, 4000)
	switch {
	case lastErr > lastUsage:
		r.Error = tail(errLine, 1, 500)
	case lastUsage < 0:
		r.Error = "aider printed no usage report, so the model was never called; last output: " +
			tail(text, 3, 300)
		return r, fmt.Errorf("%w: no \"Tokens:\" line", errNoResult)
	default:
		r.OK = true
	}
	return r, nil
}
