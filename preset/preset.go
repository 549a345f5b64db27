// Package preset knows the agent CLIs behind `uses:` (claude-code, codex, aider, gemini): how
// to build each one's argv, which API key it needs, where its model API lives (for the
// key-injecting proxy), and how to read its structured result, because these tools can exit 0
// on failure. It is a leaf package: it knows nothing of Docker, git or the config format.
//
// Every flag and output field used here was looked up in the tool's own documentation or
// source; each preset file names its sources and the version they describe.
package preset

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// PromptFile is where the sandbox writes the prompt inside the container
// ($AGENT_OUTPUT_DIR/prompt.md). Presets whose CLI reads the prompt from a file point at it.
const PromptFile = "/agent/out/prompt.md"

// OutputDir is $AGENT_OUTPUT_DIR inside the container.
const OutputDir = "/agent/out"

// Provider names a model API.
type Provider string

// The model APIs the presets talk to.
const (
	Anthropic Provider = "anthropic"
	OpenAI    Provider = "openai"
	Gemini    Provider = "gemini"
)

// API is one model API a preset's CLI calls. The key-injecting proxy (issue 7) serves a
// plain-HTTP stand-in for Upstream and adds the key there; the agent container then gets
// BaseURLEnv (or the preset's base-URL flags, see Options.BaseURL) pointing at the stand-in and
// a placeholder in KeyEnv.
type API struct {
	Provider Provider
	// Upstream is the real base URL the CLI uses by default. A stand-in must serve the same
	// paths below it (for OpenAI it ends in /v1 because the CLIs append /responses etc.).
	Upstream string
	// KeyHeader is how the API takes the key: "x-api-key", "authorization" (Bearer) or
	// "x-goog-api-key".
	KeyHeader string
	// Secret is the conventional secret name a routine declares for this key.
	Secret string
	// KeyEnv are the environment variables the CLI reads this key from; all must hold the
	// same value (e.g. codex exec reads CODEX_API_KEY, users name the secret OPENAI_API_KEY).
	KeyEnv []string
	// BaseURLEnv are the environment variables that move the CLI to another base URL; empty
	// when the CLI has none for this API (then the proxy cannot stand in for it).
	BaseURLEnv []string
}

// Options are run-time settings that do not come from the routine's `with:`.
type Options struct {
	// BaseURL maps a provider to the base URL the CLI must use instead of API.Upstream (the
	// proxy's stand-in). Providers absent from the map keep their default.
	BaseURL map[Provider]string
}

// Command is what the sandbox runs for a preset.
type Command struct {
	// Argv is the command line; the prompt is one element, never shell text.
	Argv []string
	// Env is extra environment the CLI needs (base URLs, mode switches). It never holds a
	// secret: keys are the caller's job (see API.KeyEnv).
	Env map[string]string
}

// Preset is one agent CLI.
type Preset struct {
	Name string
	// KeyEnv are the environment variables holding the model API key (the first is preferred)
	// for the preset's default model. With `with: {model: ...}` use APIs for the precise set.
	KeyEnv []string
	// BaseURLEnv is the environment variable that points the CLI's default model API at
	// another base URL ("" when there is none); APIs has the full picture.
	BaseURLEnv string
	// Scratch lists workspace paths (gitignore patterns) the CLI writes for itself, such as
	// caches; they are not the agent's work and should be left out of its patch.
	Scratch []string
	// Doc says in one line what the preset runs and where its flags come from.
	Doc string

	options []option
	build   func(prompt string, w opts, o Options) (Command, error)
	// baseURLArgs are the flags that set base URLs, for CLIs that take them only on the command
	// line; nil when environment variables are enough.
	baseURLArgs func(urls map[Provider]string) []string
	apis        func(w opts) []API
	parse       func(stdout []byte) (*Result, error)
	// exitText explains the CLI's documented exit codes.
	exitText map[int]string
	// mcp wires connectors (servers sorted by name, already checked) into the CLI; nil when
	// the CLI has no MCP support.
	mcp func(servers []MCPServer) Wiring
}

// Argv returns the command that runs the preset with prompt and the routine's `with:` options.
func (p *Preset) Argv(prompt string, with map[string]any) ([]string, error) {
	c, err := p.Command(prompt, with, Options{})
	if err != nil {
		return nil, err
	}
	return c.Argv, nil
}

// Command returns the argv and extra environment that run the preset. It validates with first,
// so a bad option is reported even if config validation was skipped.
func (p *Preset) Command(prompt string, with map[string]any, o Options) (Command, error) {
	if err := p.CheckWith(with); err != nil {
		return Command{}, err
	}
	c, err := p.build(prompt, with, o)
	if err != nil {
		return Command{}, fmt.Errorf("preset %s: %w", p.Name, err)
	}
	if c.Env == nil {
		c.Env = map[string]string{}
	}
	return c, nil
}

// WithBaseURLs returns argv, a command Command built for the preset without base URLs, with
// the flags that move its model APIs to urls put in before the prompt's `--` separator. Plans
// build argv before a run's proxy exists; the runner calls this once the proxy's endpoints
// are known. Presets that read base URLs from the environment only get argv back unchanged.
func (p *Preset) WithBaseURLs(argv []string, urls map[Provider]string) []string {
	if p.baseURLArgs == nil {
		return argv
	}
	flags := p.baseURLArgs(urls)
	sep := slices.Index(argv, "--")
	if len(flags) == 0 || sep < 0 {
		return argv
	}
	out := make([]string, 0, len(argv)+len(flags))
	out = append(out, argv[:sep]...)
	out = append(out, flags...)
	return append(out, argv[sep:]...)
}

// APIs returns the model APIs the preset calls with these `with:` options (for aider it
// depends on the model). It returns nil for a model whose API is unknown; then the routine
// must pass its key as a named secret itself.
func (p *Preset) APIs(with map[string]any) []API {
	return p.apis(with)
}

// Parse reads the CLI's stdout (log noise around the structured output is tolerated; combined
// stdout+stderr works too). It always returns a non-nil Result. The error is non-nil only when
// the output holds no readable result at all (empty, truncated, not the expected format); the
// Result then says so with OK false. A run the tool itself reports as failed gives OK false
// and a nil error.
func (p *Preset) Parse(stdout []byte) (*Result, error) {
	r, err := p.parse(stdout)
	if r == nil { // never expected; keeps the contract if a parser forgets
		r = &Result{}
	}
	if err != nil {
		r.OK = false
		if r.Error == "" {
			r.Error = err.Error()
		}
		return r, fmt.Errorf("read %s output: %w", p.Name, err)
	}
	return r, nil
}

// Evaluate combines Parse with the process exit code: a non-zero exit is a failure whatever
// the output says, and an exit code the CLI documents is explained in Result.Error.
func (p *Preset) Evaluate(stdout []byte, exitCode int) (*Result, error) {
	r, err := p.Parse(stdout)
	if exitCode == 0 {
		return r, err
	}
	r.OK = false
	why := fmt.Sprintf("exit code %d", exitCode)
	if t, ok := p.exitText[exitCode]; ok {
		why += " (" + t + ")"
	}
	switch {
	case r.Error == "" || err != nil:
		// The exit code is the better explanation than "no result in output".
		r.Error = why
	default:
		r.Error = why + ": " + r.Error
	}
	return r, err
}

// Result is what an agent CLI reports about its run.
type Result struct {
	// OK is true when the tool reports success.
	OK bool `json:"ok"`
	// Error says why the run failed, as the tool put it.
	Error string `json:"error,omitempty"`
	// CostUSD is the cost the tool reports (0 when it reports none: codex, gemini).
	CostUSD float64 `json:"cost_usd,omitempty"`
	// InputTokens counts every prompt token sent, cached or not.
	InputTokens int `json:"input_tokens,omitempty"`
	// OutputTokens counts generated tokens, reasoning included where reported.
	OutputTokens int `json:"output_tokens,omitempty"`
	// Turns is the number of model round trips the tool reports.
	Turns int `json:"turns,omitempty"`
	// Final is the agent's final message.
	Final string `json:"final,omitempty"`
	// SessionID identifies the tool's session (for resuming or finding its logs).
	SessionID string `json:"session_id,omitempty"`
	// Denied lists the tools the CLI's permission system refused (claude-code), which is why
	// an agent "succeeded" without changing anything.
	Denied []string `json:"denied,omitempty"`
}

var presets = map[string]*Preset{}

func register(p *Preset) {
	if _, dup := presets[p.Name]; dup {
		panic("preset: duplicate " + p.Name) // programming error at init, not input
	}
	presets[p.Name] = p
}

// Get returns the preset with that name.
func Get(name string) (*Preset, bool) {
	p, ok := presets[name]
	return p, ok
}

// Names lists the known presets, sorted.
func Names() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ErrUnknownPreset is returned by ParseAny for a name Get does not know.
var ErrUnknownPreset = errors.New("unknown preset")

// ParseAny parses stdout with the named preset's parser.
func ParseAny(presetName string, stdout []byte) (*Result, error) {
	p, ok := Get(presetName)
	if !ok {
		return &Result{Error: "unknown preset " + presetName},
			fmt.Errorf("%w %q (known: %s)", ErrUnknownPreset, presetName, strings.Join(Names(), ", "))
	}
	return p.Parse(stdout)
}

// keysOf collects the KeyEnv of apis, deduplicated, in order.
func keysOf(apis []API) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range apis {
		for _, k := range a.KeyEnv {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}

// baseURLEnv sets every base-URL variable of the apis that o moves elsewhere.
func baseURLEnv(env map[string]string, apis []API, o Options) {
	for _, a := range apis {
		u, ok := o.BaseURL[a.Provider]
		if !ok || u == "" {
			continue
		}
		for _, e := range a.BaseURLEnv {
			env[e] = u
		}
	}
}

// The model APIs, as the CLIs call them by default.
var (
	anthropicAPI = API{
		Provider:  Anthropic,
		Upstream:  "https://api.anthropic.com",
		KeyHeader: "x-api-key",
		Secret:    "ANTHROPIC_API_KEY",
		KeyEnv:    []string{"ANTHROPIC_API_KEY"},
	}
	openaiAPI = API{
		Provider:  OpenAI,
		Upstream:  "https://api.openai.com/v1",
		KeyHeader: "authorization",
		Secret:    "OPENAI_API_KEY",
		KeyEnv:    []string{"OPENAI_API_KEY"},
	}
	geminiAPI = API{
		Provider:  Gemini,
		Upstream:  "https://generativelanguage.googleapis.com",
		KeyHeader: "x-goog-api-key",
		Secret:    "GEMINI_API_KEY",
		KeyEnv:    []string{"GEMINI_API_KEY"},
	}
)

// withBaseURLEnv returns a copy of a with other base-URL variables.
func (a API) withBaseURLEnv(env ...string) API {
	a.BaseURLEnv = env
	return a
}

func (a API) withKeyEnv(env ...string) API {
	a.KeyEnv = env
	return a
}
