// Package preset knows the agent CLIs behind `uses:` (claude-code, codex, aider, gemini): how
// to build each one's argv, which API key it needs, and how to read its structured result,
// because these tools can exit 0 on failure. It is a leaf package: it knows nothing of Docker,
// git or the config format.
package preset

import "sort"

// Preset is one agent CLI.
type Preset struct {
	Name string
	// KeyEnv are the environment variables holding the model API key (the first is preferred).
	KeyEnv []string
	// argv builds the command line; the prompt is an argv element, never shell text.
	argv func(prompt string, with map[string]any) ([]string, error)
}

// Argv returns the command that runs the preset with prompt and the routine's `with:` options.
func (p *Preset) Argv(prompt string, with map[string]any) ([]string, error) {
	return p.argv(prompt, with)
}

var presets = map[string]*Preset{}

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

func init() {
	// Placeholder until each CLI's flags are looked up; replaced by the real definitions.
	for _, n := range []string{"claude-code", "codex", "aider", "gemini"} {
		presets[n] = &Preset{Name: n, argv: func(prompt string, _ map[string]any) ([]string, error) {
			return []string{n, prompt}, nil
		}}
	}
}
