package preset

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustGet(t *testing.T, name string) *Preset {
	t.Helper()
	p, ok := Get(name)
	if !ok {
		t.Fatalf("preset %q is not registered", name)
	}
	return p
}

func TestNamesListsEveryPresetSorted(t *testing.T) {
	t.Parallel()
	want := []string{"aider", "claude-code", "codex", "gemini"}
	if diff := cmp.Diff(want, Names()); diff != "" {
		t.Errorf("Names() (-want +got):\n%s", diff)
	}
	if _, ok := Get("cursor"); ok {
		t.Error(`Get("cursor") found a preset that does not exist`)
	}
}

func TestArgv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		preset string
		prompt string
		with   map[string]any
		want   []string
	}{
		{
			name: "claude defaults to JSON output and bypass mode, prompt after --", preset: "claude-code",
			prompt: "fix it",
			want:   []string{"claude", "-p", "--output-format", "json", "--permission-mode", "bypassPermissions", "--", "fix it"},
		},
		{
			name: "claude maps every with option to its flag", preset: "claude-code", prompt: "p",
			with: map[string]any{
				"model": "sonnet", "max-turns": 12, "permission-mode": "acceptEdits",
				"allowed-tools":        []any{"Read", "Bash(go test:*)"},
				"disallowed-tools":     "WebFetch",
				"append-system-prompt": "Be brief.",
			},
			want: []string{"claude", "-p", "--output-format", "json", "--model", "sonnet", "--max-turns", "12",
				"--permission-mode", "acceptEdits", "--allowedTools", "Read,Bash(go test:*)",
				"--disallowedTools", "WebFetch", "--append-system-prompt", "Be brief.", "--", "p"},
		},
		{
			name: "claude accepts max-turns decoded from JSON as a float", preset: "claude-code", prompt: "p",
			with: map[string]any{"max-turns": float64(3)},
			want: []string{"claude", "-p", "--output-format", "json", "--max-turns", "3", "--permission-mode", "bypassPermissions", "--", "p"},
		},
		{
			name: "claude keeps a prompt that looks like a flag after --", preset: "claude-code",
			prompt: "--dangerously-skip-permissions; rm -rf /",
			with:   map[string]any{"permission-mode": "plan"},
			want: []string{"claude", "-p", "--output-format", "json", "--permission-mode", "plan", "--",
				"--dangerously-skip-permissions; rm -rf /"},
		},
		{
			name: "codex runs exec --json with the container as the sandbox", preset: "codex", prompt: "fix it",
			want: []string{"codex", "exec", "--json", "--skip-git-repo-check", "--sandbox", "danger-full-access", "--", "fix it"},
		},
		{
			name: "codex maps model, sandbox and ephemeral", preset: "codex", prompt: "p",
			with: map[string]any{"model": "gpt-5-codex", "sandbox": "workspace-write", "ephemeral": true},
			want: []string{"codex", "exec", "--json", "--skip-git-repo-check", "--sandbox", "workspace-write",
				"--model", "gpt-5-codex", "--ephemeral", "--", "p"},
		},
		{
			name: "codex leaves ephemeral off when false", preset: "codex", prompt: "p",
			with: map[string]any{"ephemeral": false},
			want: []string{"codex", "exec", "--json", "--skip-git-repo-check", "--sandbox", "danger-full-access", "--", "p"},
		},
		{
			name: "aider reads the prompt file and never commits or prompts", preset: "aider", prompt: "ignored: read from the file",
			want: []string{"aider", "--message-file", "/agent/out/prompt.md", "--yes-always", "--no-auto-commits",
				"--no-dirty-commits", "--no-gitignore", "--no-pretty", "--no-stream", "--no-check-update",
				"--no-show-model-warnings", "--no-analytics", "--chat-history-file", "/agent/out/aider.chat.history.md",
				"--input-history-file", "/tmp/aider.input.history"},
		},
		{
			name: "aider maps model and edit-format", preset: "aider", prompt: "p",
			with: map[string]any{"model": "sonnet", "edit-format": "whole"},
			want: []string{"aider", "--message-file", "/agent/out/prompt.md", "--yes-always", "--no-auto-commits",
				"--no-dirty-commits", "--no-gitignore", "--no-pretty", "--no-stream", "--no-check-update",
				"--no-show-model-warnings", "--no-analytics", "--chat-history-file", "/agent/out/aider.chat.history.md",
				"--input-history-file", "/tmp/aider.input.history", "--model", "sonnet", "--edit-format", "whole"},
		},
		{
			name: "gemini runs headless JSON in yolo mode with the prompt as a flag value", preset: "gemini", prompt: "-p evil",
			want: []string{"gemini", "--output-format", "json", "--approval-mode", "yolo", "--prompt=-p evil"},
		},
		{
			name: "gemini maps model and approval-mode", preset: "gemini", prompt: "p",
			with: map[string]any{"model": "gemini-2.5-pro", "approval-mode": "auto_edit"},
			want: []string{"gemini", "--output-format", "json", "--approval-mode", "auto_edit", "--model", "gemini-2.5-pro", "--prompt=p"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := mustGet(t, tt.preset).Argv(tt.prompt, tt.with)
			if err != nil {
				t.Fatalf("Argv: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("argv (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCommandEnv(t *testing.T) {
	t.Parallel()
	proxy := Options{BaseURL: map[Provider]string{
		Anthropic: "http://proxy:8080/anthropic",
		OpenAI:    "http://proxy:8080/openai/v1",
		Gemini:    "http://proxy:8080/gemini",
	}}
	tests := []struct {
		name     string
		preset   string
		with     map[string]any
		opts     Options
		wantEnv  map[string]string
		wantArgs []string // must appear in argv, in order, as one run
	}{
		{name: "claude in bypass mode declares the sandbox so it may run as root", preset: "claude-code",
			wantEnv: map[string]string{"IS_SANDBOX": "1"}},
		{name: "claude in another mode sets nothing", preset: "claude-code", with: map[string]any{"permission-mode": "dontAsk"},
			wantEnv: map[string]string{}},
		{name: "claude behind the proxy gets ANTHROPIC_BASE_URL", preset: "claude-code", opts: proxy,
			wantEnv: map[string]string{"IS_SANDBOX": "1", "ANTHROPIC_BASE_URL": "http://proxy:8080/anthropic"}},
		{name: "codex behind the proxy gets the config key and the old variable", preset: "codex", opts: proxy,
			wantEnv:  map[string]string{"OPENAI_BASE_URL": "http://proxy:8080/openai/v1"},
			wantArgs: []string{"-c", `openai_base_url="http://proxy:8080/openai/v1"`}},
		{name: "gemini behind the proxy gets GOOGLE_GEMINI_BASE_URL", preset: "gemini", opts: proxy,
			wantEnv: map[string]string{"GOOGLE_GEMINI_BASE_URL": "http://proxy:8080/gemini"}},
		{name: "aider with a Claude model gets litellm's Anthropic base", preset: "aider", opts: proxy,
			with:    map[string]any{"model": "anthropic/claude-sonnet-4-20250514"},
			wantEnv: map[string]string{"ANTHROPIC_API_BASE": "http://proxy:8080/anthropic"}},
		{name: "aider with an OpenAI model gets OPENAI_API_BASE", preset: "aider", opts: proxy,
			with:    map[string]any{"model": "gpt-4o"},
			wantEnv: map[string]string{"OPENAI_API_BASE": "http://proxy:8080/openai/v1"}},
		{name: "aider with a Gemini model has no base URL to move", preset: "aider", opts: proxy,
			with: map[string]any{"model": "gemini/gemini-2.5-pro"}, wantEnv: map[string]string{}},
		{name: "no proxy, no base URL", preset: "codex", wantEnv: map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := mustGet(t, tt.preset).Command("p", tt.with, tt.opts)
			if err != nil {
				t.Fatalf("Command: %v", err)
			}
			if diff := cmp.Diff(tt.wantEnv, c.Env); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
			if tt.wantArgs != nil {
				i := slices.Index(c.Argv, tt.wantArgs[0])
				if i < 0 || i+len(tt.wantArgs) > len(c.Argv) || !slices.Equal(c.Argv[i:i+len(tt.wantArgs)], tt.wantArgs) {
					t.Errorf("argv %q lacks %q", c.Argv, tt.wantArgs)
				}
				if c.Argv[len(c.Argv)-1] != "p" || c.Argv[len(c.Argv)-2] != "--" {
					t.Errorf("argv %q: the prompt must stay last, after --", c.Argv)
				}
			}
		})
	}
}

func TestCheckWith(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		preset string
		with   map[string]any
		want   []string // substrings of the error, one per problem, in key order; nil = valid
	}{
		{name: "nil is valid", preset: "claude-code"},
		{name: "every claude option with a good value is valid", preset: "claude-code", with: map[string]any{
			"model": "opus", "max-turns": 5, "permission-mode": "dontAsk",
			"allowed-tools": "Read", "disallowed-tools": []string{"Bash"}, "append-system-prompt": "x"}},
		{name: "an unknown key names the known ones", preset: "claude-code", with: map[string]any{"max_turns": 3},
			want: []string{"with.max_turns: unknown option; known: allowed-tools, append-system-prompt, disallowed-tools, max-turns, model, permission-mode (preset claude-code)"}},
		{name: "max-turns as a string is the wrong type", preset: "claude-code", with: map[string]any{"max-turns": "ten"},
			want: []string{`with.max-turns: want a whole number, got string "ten"`}},
		{name: "max-turns must be positive", preset: "claude-code", with: map[string]any{"max-turns": 0},
			want: []string{"with.max-turns: must be at least 1, got 0"}},
		{name: "max-turns must be whole", preset: "claude-code", with: map[string]any{"max-turns": 2.5},
			want: []string{"with.max-turns: want a whole number, got float64 2.5"}},
		{name: "permission-mode must be a known mode", preset: "claude-code", with: map[string]any{"permission-mode": "yolo"},
			want: []string{`with.permission-mode: "yolo" is not one of default, acceptEdits, plan, auto, dontAsk, bypassPermissions`}},
		{name: "allowed-tools list items must be strings", preset: "claude-code", with: map[string]any{"allowed-tools": []any{"Read", 3}},
			want: []string{"with.allowed-tools: want a string or a list of strings, got a list"}},
		{name: "model must not be empty", preset: "codex", with: map[string]any{"model": "  "},
			want: []string{"with.model: must not be empty"}},
		{name: "codex sandbox must be a known mode", preset: "codex", with: map[string]any{"sandbox": "full"},
			want: []string{`with.sandbox: "full" is not one of read-only, workspace-write, danger-full-access`}},
		{name: "ephemeral must be a boolean", preset: "codex", with: map[string]any{"ephemeral": "yes"},
			want: []string{`with.ephemeral: want true or false, got string "yes"`}},
		{name: "every problem is reported, in key order", preset: "gemini",
			with: map[string]any{"yolo": true, "approval-mode": 1, "model": map[string]any{}},
			want: []string{"with.approval-mode: want one of default, auto_edit, yolo, plan; got int 1",
				"with.model: want a string, got a mapping", "with.yolo: unknown option"}},
		{name: "aider rejects claude options", preset: "aider", with: map[string]any{"max-turns": 3},
			want: []string{"with.max-turns: unknown option; known: edit-format, model (preset aider)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := mustGet(t, tt.preset)
			err := p.CheckWith(tt.with)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("CheckWith: %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckWith: nil, want %q", tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("CheckWith gave %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, lines[i], w)
				}
			}
			var we *WithError
			if !errors.As(err, &we) || we.Preset != tt.preset {
				t.Errorf("errors.As(*WithError) = %v, %+v", errors.As(err, &we), we)
			}
			// Command validates too, so a skipped config check cannot produce a bad argv.
			if _, cerr := p.Command("p", tt.with, Options{}); cerr == nil {
				t.Error("Command accepted options CheckWith rejects")
			}
		})
	}
}

func TestAPIs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		preset        string
		with          map[string]any
		wantProviders []Provider
		wantKeys      []string
	}{
		{name: "claude calls Anthropic", preset: "claude-code", wantProviders: []Provider{Anthropic}, wantKeys: []string{"ANTHROPIC_API_KEY"}},
		{name: "codex reads the OpenAI key under both names", preset: "codex", wantProviders: []Provider{OpenAI},
			wantKeys: []string{"OPENAI_API_KEY", "CODEX_API_KEY"}},
		{name: "gemini calls Gemini", preset: "gemini", wantProviders: []Provider{Gemini}, wantKeys: []string{"GEMINI_API_KEY"}},
		{name: "aider without a model may use any", preset: "aider", wantProviders: []Provider{Anthropic, OpenAI, Gemini},
			wantKeys: []string{"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY"}},
		{name: "aider sonnet alias is Anthropic", preset: "aider", with: map[string]any{"model": "sonnet"},
			wantProviders: []Provider{Anthropic}, wantKeys: []string{"ANTHROPIC_API_KEY"}},
		{name: "aider o3-mini is OpenAI", preset: "aider", with: map[string]any{"model": "o3-mini"},
			wantProviders: []Provider{OpenAI}, wantKeys: []string{"OPENAI_API_KEY"}},
		{name: "aider openai/ prefix is OpenAI", preset: "aider", with: map[string]any{"model": "openai/my-finetune"},
			wantProviders: []Provider{OpenAI}, wantKeys: []string{"OPENAI_API_KEY"}},
		{name: "aider gemini/ prefix is Gemini", preset: "aider", with: map[string]any{"model": "gemini/gemini-2.5-pro"},
			wantProviders: []Provider{Gemini}, wantKeys: []string{"GEMINI_API_KEY"}},
		{name: "aider on another provider has no known API", preset: "aider", with: map[string]any{"model": "deepseek/deepseek-chat"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			apis := mustGet(t, tt.preset).APIs(tt.with)
			var provs []Provider
			for _, a := range apis {
				provs = append(provs, a.Provider)
				if a.Upstream == "" || a.KeyHeader == "" || a.Secret != a.KeyEnv[0] {
					t.Errorf("API %+v is incomplete", a)
				}
			}
			if diff := cmp.Diff(tt.wantProviders, provs); diff != "" {
				t.Errorf("providers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantKeys, keysOf(apis)); diff != "" {
				t.Errorf("key env (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPresetFieldsMatchDefaultAPIs(t *testing.T) {
	t.Parallel()
	for _, name := range Names() {
		p := mustGet(t, name)
		if diff := cmp.Diff(keysOf(p.APIs(nil)), p.KeyEnv); diff != "" {
			t.Errorf("%s: KeyEnv disagrees with APIs(nil) (-apis +KeyEnv):\n%s", name, diff)
		}
		if p.Doc == "" {
			t.Errorf("%s has no Doc", name)
		}
		apis := p.APIs(nil)
		if p.BaseURLEnv != "" && (len(apis) != 1 || !slices.Contains(apis[0].BaseURLEnv, p.BaseURLEnv)) {
			t.Errorf("%s: BaseURLEnv %q is not its API's", name, p.BaseURLEnv)
		}
	}
}

// The runner adds base-URL flags to an argv planned without them; the result must be the argv
// the preset builds when it knows the URLs from the start, for every preset.
func TestWithBaseURLsMatchesBuildingWithThem(t *testing.T) {
	urls := map[Provider]string{Anthropic: "http://10.0.0.2:8081/t/anthropic", OpenAI: "http://10.0.0.2:8081/t/openai", Gemini: "http://10.0.0.2:8081/t/gemini"}
	for _, name := range Names() {
		p, _ := Get(name)
		planned, err := p.Command("fix -- it", nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		direct, err := p.Command("fix -- it", nil, Options{BaseURL: urls})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(direct.Argv, p.WithBaseURLs(planned.Argv, urls)); diff != "" {
			t.Errorf("%s: WithBaseURLs differs from building with the URLs (-built +added):\n%s", name, diff)
		}
		if got := p.WithBaseURLs(planned.Argv, nil); !slices.Equal(got, planned.Argv) {
			t.Errorf("%s: WithBaseURLs without URLs changed argv to %q", name, got)
		}
	}
	codex, _ := Get("codex")
	got := codex.WithBaseURLs([]string{"codex", "exec", "--json", "--", "p"}, urls)
	want := []string{"codex", "exec", "--json", "-c", `openai_base_url="http://10.0.0.2:8081/t/openai"`, "--", "p"}
	if !slices.Equal(got, want) {
		t.Errorf("codex: %q, want %q", got, want)
	}
}
