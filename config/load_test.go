package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

const examplesDir = "../examples/.agents"

func TestLoadExamples(t *testing.T) {
	cfg, err := Load(examplesDir)
	if err != nil {
		t.Fatalf("examples do not load:\n%v", err)
	}
	var names []string
	for _, r := range cfg.Routines {
		names = append(names, r.Name)
	}
	want := []string{"docs-update", "flaky-tests", "migrate", "nightly-audit", "pr-review", "test-matrix", "triage"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("routines in file order (-want +got):\n%s", diff)
	}
	if lead := cfg.Routine("migrate").Agent("lead"); lead.Orchestrate == nil || lead.Orchestrate.MaxAgents != 120 || lead.Orchestrate.Retries != 2 {
		t.Errorf("migrate's lead orchestrates within %+v", lead.Orchestrate)
	}
	audit := cfg.Routine("nightly-audit")
	var agents []string
	for _, a := range audit.Agents {
		agents = append(agents, a.Name)
	}
	if diff := cmp.Diff([]string{"plan", "audit", "verify", "consolidate"}, agents); diff != "" {
		t.Errorf("agents keep file order (-want +got):\n%s", diff)
	}
	fan := audit.Agent("audit")
	if !fan.Matrix.Dynamic() || fan.Matrix.Axes[0].Expr != "${{ fromJSON(needs.plan.outputs.tasks) }}" {
		t.Errorf("audit matrix = %+v, want one dynamic axis", fan.Matrix)
	}
	v := audit.Agent("verify")
	if v.Replicas != 3 || v.Quorum != 2 || v.Vote != "verdict" || v.Image != "localhost/agentrunner/codex:0.169.0" {
		t.Errorf("verify = replicas %d quorum %d vote %q image %q", v.Replicas, v.Quorum, v.Vote, v.Image)
	}
	if got := audit.Agent("verify").Needs; !cmp.Equal(got, []string{"audit"}) {
		t.Errorf("needs: audit (a single name) = %v", got)
	}
	if audit.Publish.PullRequest == nil || !audit.Publish.PullRequest.Draft || !audit.Publish.Check {
		t.Errorf("publish = %+v", audit.Publish)
	}
	if in := cfg.Routine("triage").On.Dispatch.Inputs; len(in) != 2 || in[0].Name != "area" || in[1].Default != "50" {
		t.Errorf("dispatch inputs = %+v", in)
	}
}

func TestDefaultsMerged(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want func(a *Agent) Agent
	}{
		{"built-in defaults when nothing is set", `
on: push
agents:
  a: {command: [true], image: x}`, func(a *Agent) Agent {
			return Agent{Image: "x", PullPolicy: "if-missing", Changes: "discard", Timeout: 30 * time.Minute,
				Resources: Resources{CPUs: 1, Memory: 2 << 30, Pids: 512}, Network: Network{Mode: "none"}}
		}},
		{"routine defaults fill what the agent leaves unset, field by field", `
on: push
defaults:
  image: img
  pull-policy: never
  timeout: 1h
  user: "1000"
  resources: {memory: 512m, pids: 64}
  network: {allow: ["api.example.com:443"]}
agents:
  a:
    command: [true]
    resources: {cpus: 0.5}`, func(a *Agent) Agent {
			return Agent{Image: "img", PullPolicy: "never", Changes: "discard", Timeout: time.Hour, User: "1000",
				Resources: Resources{CPUs: 0.5, Memory: 512 << 20, Pids: 64},
				Network:   Network{Mode: "allow", Allow: []string{"api.example.com:443"}}}
		}},
		{"the agent's own settings win", `
on: push
defaults: {image: img, timeout: 1h, network: open, resources: {memory: 1g}}
agents:
  a:
    command: [true]
    image: mine
    pull-policy: always
    timeout: 90s
    changes: keep
    network: none
    resources: {memory: 3g}`, func(a *Agent) Agent {
			return Agent{Image: "mine", PullPolicy: "always", Changes: "keep", Timeout: 90 * time.Second,
				Resources: Resources{CPUs: 1, Memory: 3 << 30, Pids: 512}, Network: Network{Mode: "none"}}
		}},
		{"disk and change limits: the agent's win, defaults fill the rest, zero is the runner's", `
on: push
defaults: {image: img, resources: {disk: 1g}, limits: {changed-file: 1m, patch: 20m}}
agents:
  a:
    command: [true]
    resources: {disk: 500m}
    limits: {patch: 5m}`, func(a *Agent) Agent {
			return Agent{Image: "img", PullPolicy: "if-missing", Changes: "discard", Timeout: DefaultTimeout,
				Resources: Resources{CPUs: 1, Memory: 2 << 30, Pids: 512, Disk: 500 << 20},
				Limits:    Limits{ChangedFile: 1 << 20, Patch: 5 << 20}, Network: Network{Mode: "none"}}
		}},
		{"no limits anywhere", `
on: push
agents:
  a: {command: [true], image: img}`, func(a *Agent) Agent {
			return Agent{Image: "img", PullPolicy: "if-missing", Changes: "discard", Timeout: DefaultTimeout,
				Resources: Resources{CPUs: 1, Memory: 2 << 30, Pids: 512}, Network: Network{Mode: "none"}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, errs := Parse("r.yaml", []byte(tt.yaml))
			if errs != nil {
				t.Fatal(errs)
			}
			a := r.Agents[0]
			got := Agent{Image: a.Image, PullPolicy: a.PullPolicy, Changes: a.Changes, Timeout: a.Timeout, User: a.User,
				Resources: a.Resources, Limits: a.Limits, Network: Network{Mode: a.Network.Mode, Allow: a.Network.Allow}}
			if diff := cmp.Diff(tt.want(a), got); diff != "" {
				t.Errorf("merged agent (-want +got):\n%s", diff)
			}
			if !r.Publish.Check || r.MaxFanOut != DefaultMaxFanOut || r.Name != "r" {
				t.Errorf("routine defaults: check %v, max-fan-out %d, name %q", r.Publish.Check, r.MaxFanOut, r.Name)
			}
		})
	}
}

func TestShortForms(t *testing.T) {
	r, errs := Parse(".agents/x.yml", []byte(`
name: short
on: [push, pull_request, dispatch]
concurrency: one-at-a-time
defaults: {image: i}
agents:
  a: {uses: codex, prompt: p}
  b: {command: [make, test], needs: a, matrix: "${{ fromJSON(needs.a.outputs.list) }}"}
publish: {check: false}
`))
	if errs != nil {
		t.Fatal(errs)
	}
	if r.On.Push == nil || r.On.PullRequest == nil || r.On.Dispatch == nil || r.On.Webhook != nil {
		t.Errorf("on = %+v", r.On)
	}
	if r.Concurrency.Group != "one-at-a-time" || r.Publish.Check {
		t.Errorf("concurrency %+v, check %v", r.Concurrency, r.Publish.Check)
	}
	if b := r.Agent("b"); b.Matrix.Expr == "" || !cmp.Equal(b.Needs, []string{"a"}) {
		t.Errorf("b = %+v", b)
	}
}

// TestParseErrors holds the mistakes people make, with the message and position they get.
func TestParseErrors(t *testing.T) {
	const head = "on: push\ndefaults: {image: i}\nagents:\n"
	tests := []struct {
		name string
		yaml string
		want []string // each a substring of one error, in order
	}{
		{"a tab in indentation", "on:\n\tpush: {}\n", []string{"f.yaml:2:1: tabs are not allowed for indentation; use spaces"}},
		{"a tab after a deeper line", "on: {push: {}}\nagents:\n  b:\n    image: x\n\tcommand: [make]\n", []string{"f.yaml:5:1: tabs are not allowed for indentation; use spaces"}},
		{"a key indented too deep", head + "  a:\n    uses: codex\n      prompt: p\n", []string{"f.yaml:6:7: unexpected ':'"}},
		{"a key indented too shallow", head + "  a:\n    uses: codex\n    prompt: p\n   needs: [b]\n", []string{"f.yaml:7:4: bad indentation"}},
		{"agent keys not indented under the agent", head + "  a:\n  uses: codex\n", []string{
			`f.yaml:4:3: agent "a" has no settings; indent its keys`,
			`f.yaml:5:3: "uses" is an agent setting, but here it sits directly under agents:`}},
		{"a misspelt key", head + "  a: {uses: codex, prompt: p, need: [b]}\n", []string{`f.yaml:4:31: unknown key "need" in agent "a"; did you mean "needs"?`}},
		{"a misspelt event", "on: {pull-request: {}}\nagents: {a: {command: [x], image: i}}\n", []string{`unknown key "pull-request" in on; did you mean "pull_request"?`}},
		{"an agent key at the top level", head + "  a: {command: [x]}\nprompt: hi\n", []string{`f.yaml:5:1: unknown key "prompt" in routine; "prompt" is an agent setting`}},
		{"needs on a missing agent", head + "  a: {command: [x], needs: [bb]}\n  b: {command: [x]}\n", []string{`f.yaml:4:29: agent "a" needs "bb", but there is no agent "bb" in this routine; did you mean "b"?`}},
		{"a needs cycle", head + "  a: {command: [x], needs: [c]}\n  b: {command: [x], needs: [a]}\n  c: {command: [x], needs: [b]}\n", []string{"f.yaml:4:3: needs cycle: a -> c -> b -> a"}},
		{"an agent needing itself", head + "  a: {command: [x], needs: a}\n", []string{"needs cycle: a -> a"}},
		{"a bad cron", "on: {schedule: [{cron: '0 25 * * *'}]}\nagents: {a: {command: [x], image: i}}\n", []string{`f.yaml:1:24: cron "0 25 * * *" is not valid: end of range (25) above maximum (23)`}},
		{"a cron with 6 fields", "on: {schedule: [{cron: '0 0 3 * * *'}]}\nagents: {a: {command: [x], image: i}}\n", []string{`cron "0 0 3 * * *" is not valid`}},
		{"an unknown time zone", "on: {schedule: [{cron: '@daily', timezone: Mars/Base}]}\nagents: {a: {command: [x], image: i}}\n", []string{`unknown timezone "Mars/Base"`}},
		{"schedule not a list", "on: {schedule: {cron: '@daily'}}\nagents: {a: {command: [x], image: i}}\n", []string{"schedule must be a list of cron entries"}},
		{"a bad glob", "on: {push: {branches: ['release/[0-9']}}\nagents: {a: {command: [x], image: i}}\n", []string{`branches pattern "release/[0-9" is not valid: [ is never closed by ] (at character 9)`}},
		{"branches and branches-ignore together", "on: {push: {branches: [a], branches-ignore: [b]}}\nagents: {a: {command: [x], image: i}}\n", []string{"use branches or branches-ignore, not both"}},
		{"only negative patterns", "on: {push: {paths: ['!docs/**']}}\nagents: {a: {command: [x], image: i}}\n", []string{"has only '!' patterns"}},
		{"an unknown pull request type", "on: {pull_request: {types: [opend]}}\nagents: {a: {command: [x], image: i}}\n", []string{`unknown activity type "opend"; did you mean "opened"?`}},
		{"a duration without a unit", head + "  a: {command: [x], timeout: 30}\n", []string{`timeout must be a positive duration like 30m, 90s or 1h30m, got "30" (a bare number has no unit`}},
		{"a bad size", head + "  a: {command: [x], resources: {memory: 2gb2}}\n", []string{`memory must be a positive size`}},
		{"a bad disk size", head + "  a: {command: [x], resources: {disk: 2 gigs}}\n", []string{`f.yaml:4:39: disk must be a positive size like 512m, 2g or 1.5g (k, m, g, t are powers of 1024; a bare number is bytes), got "2 gigs"`}},
		{"a bad changed-file limit", head + "  a: {command: [x], limits: {changed-file: -1m}}\n", []string{`f.yaml:4:44: changed-file must be a positive size`}},
		{"a zero patch limit", head + "  a: {command: [x], limits: {patch: 0}}\n", []string{`f.yaml:4:37: patch must be a positive size`}},
		{"a misspelt limit", head + "  a: {command: [x], limits: {changed-files: 1m}}\n", []string{`unknown key "changed-files" in limits; did you mean "changed-file"?`}},
		{"quorum above replicas", head + "  a: {uses: codex, prompt: p, replicas: 2, quorum: 3, vote: v}\n", []string{"quorum 3 is more than its 2 replica(s)"}},
		{"quorum without vote or judge", head + "  a: {uses: codex, prompt: p, replicas: 3, quorum: 2}\n", []string{"quorum needs something to agree on"}},
		{"a judge that does not exist", head + "  a: {uses: codex, prompt: p, replicas: 3, judge: jduge}\n  judge: {uses: codex, prompt: p}\n", []string{`judge "jduge" is not an agent of this routine; did you mean "judge"?`}},
		{"both uses and command", head + "  a: {uses: codex, prompt: p, command: [x]}\n", []string{"sets both uses and command"}},
		{"neither uses nor command", head + "  a: {prompt: p}\n", []string{"needs `uses: <preset>`"}},
		{"an unknown preset", head + "  a: {uses: claud-code, prompt: p}\n", []string{`unknown preset "claud-code"`, `did you mean "claude-code"?`}},
		{"a shell string command", head + "  a: {command: make test}\n", []string{"command must be an argv list, not a shell string: write command: [make, test]"}},
		{"a bad changes value", head + "  a: {command: [x], changes: kept}\n", []string{`changes must be one of keep, discard, got "kept"; did you mean "keep"?`}},
		{"a bad pull policy", head + "  a: {command: [x], pull-policy: missing}\n", []string{"pull-policy must be one of never, if-missing, always"}},
		{"a bad network port", head + "  a: {command: [x], network: {allow: ['api.x.com:https']}}\n", []string{`has port "https"; a port is a number from 1 to 65535`}},
		{"a bad network mode", head + "  a: {command: [x], network: closed}\n", []string{"network must be none, open, or {allow: [host:port, ...]}"}},
		{"no image anywhere", "on: push\nagents:\n  a: {command: [x]}\n", []string{"f.yaml:3:3: agent \"a\" has no container image: set `image:` on the agent, or `defaults: {image: ...}`"}},
		{"a secret the routine does not list", head + "  a: {command: [x], secrets: [TOKEN]}\n", []string{`asks for secret "TOKEN", which the routine does not list`}},
		{"a duplicate key", head + "  a: {command: [x]}\n  a: {command: [y]}\n", []string{`key "a" is set twice in agents (first at line 4)`}},
		{"a wrong type", head + "  a: {command: [x], replicas: three}\n", []string{`replicas must be a whole number, got a string ("three")`}},
		{"a number where a string belongs", head + "  a: {command: [x], prompt: 42}\n", []string{`prompt must be a string, got a number (42); put it in quotes: "42"`}},
		{"a pull request with nothing to carry", head + "  a: {command: [x]}\npublish: {pull-request: {title: t}}\n", []string{"publish.pull-request has no changes to carry"}},
		{"a default outside the options", "on: {dispatch: {inputs: {x: {options: [a, b], default: c}}}}\nagents: {a: {command: [x], image: i}}\n", []string{`input "x": default "c" is not one of its options (a, b)`}},
		{"an empty file", "", []string{"f.yaml: file is empty"}},
		{"a list instead of a routine", "- a\n", []string{"a routine file must be a mapping"}},
		{"two documents", "on: push\nagents: {a: {command: [x], image: i}}\n---\non: push\n", []string{"second YAML document"}},
		{"no on", "agents: {a: {command: [x], image: i}}\n", []string{"routine has no `on:`"}},
		{"no agents", "on: push\n", []string{`routine is missing the required key "agents"`}},
		{"an unclosed bracket", "on: push\nagents: [a\n", []string{"f.yaml:"}},
		{"a bad matrix axis", head + "  a: {command: [x], matrix: {os: linux}}\n", []string{`matrix axis "os" must be a list of values or one ${{ }} expression`}},
		{"a bad routine name", "name: 'my routine'\non: push\nagents: {a: {command: [x], image: i}}\n", []string{`f.yaml:1:7: routine name "my routine" is not valid`}},
		{"every problem, not just the first", head + "  a: {command: [x], timeout: soon, replicas: 0}\n  b: {commnd: [x]}\n", []string{
			"f.yaml:4:30: timeout", "f.yaml:4:46: replicas must be at least 1", `f.yaml:5:7: unknown key "commnd"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, errs := Parse("f.yaml", []byte(tt.yaml))
			if errs == nil {
				t.Fatalf("Parse accepted it: %+v", r)
			}
			if r != nil {
				t.Errorf("Parse returned a routine along with errors")
			}
			got := errs.Error()
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("want an error containing\n  %s\ngot:\n%s", w, got)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestLoadFSReportsEveryFileSorted(t *testing.T) {
	fsys := fstest.MapFS{
		"repo/.agents/b.yaml":      {Data: []byte("on: push\nagents: {x: {command: [x], image: i, timeout: nope}}\n")},
		"repo/.agents/a.yml":       {Data: []byte("on: push\nagents:\n  x: {command: [x], image: i, tiemout: 1m}\n")},
		"repo/.agents/c.yaml":      {Data: []byte("name: a\non: push\nagents: {x: {command: [x], image: i}}\n")},
		"repo/.agents/README.md":   {Data: []byte("not a routine")},
		"repo/.agents/sub/d.yaml":  {Data: []byte("garbage: [")},
		"repo/.agents/ok.yaml":     {Data: []byte("on: push\nagents: {x: {command: [x], image: i}}\n")},
		"repo/.agents/big.yaml":    {Data: []byte(strings.Repeat("#", MaxFileSize+1))},
		"repo/.agents/second.yaml": {Data: []byte("name: ok\non: push\nagents: {x: {command: [x], image: i}}\n")},
	}
	_, err := LoadFS(fsys, "repo/.agents")
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("LoadFS error = %v, want Errors", err)
	}
	want := []string{
		`repo/.agents/a.yml:3:31: unknown key "tiemout" in agent "x"; did you mean "timeout"?`,
		`repo/.agents/b.yaml:2:47: timeout must be a positive duration`,
		`repo/.agents/big.yaml: file is larger than`,
		`repo/.agents/second.yaml:1:7: routine name "ok" is already used by repo/.agents/ok.yaml`,
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), errs)
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want prefix %q", i, errs[i].Error(), w)
		}
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte("on: push\nagents: {x: {command: [x], image: i}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dir != dir || len(cfg.Routines) != 1 || cfg.Routines[0].Pos.File != filepath.Join(dir, "r.yaml") {
		t.Errorf("cfg = %+v", cfg)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil || errors.As(err, new(Errors)) {
		t.Errorf("Load of a missing directory = %v, want an I/O error", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "1024", want: 1024},
		{in: "512m", want: 512 << 20},
		{in: "2g", want: 2 << 30},
		{in: "2G", want: 2 << 30},
		{in: "1.5g", want: 3 << 29},
		{in: "4k", want: 4096},
		{in: "1t", want: 1 << 40},
		{in: "2gb", want: 2 << 30},
		{in: "2GiB", want: 2 << 30},
		{in: "", bad: true},
		{in: "g", bad: true},
		{in: "2x", bad: true},
		{in: "-1g", bad: true},
		{in: "1e9", bad: true},
		{in: "99999999999t", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.bad != (err != nil) || got != tt.want && !tt.bad {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, bad %v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"needs", "timeout", "pull-policy", "pull_request"}
	tests := map[string]string{"need": "needs", "tiemout": "timeout", "pull_policy": "pull-policy",
		"pull-request": "pull_request", "Needs": "needs", "xyz": "", "": ""}
	for in, want := range tests {
		if got := suggest(in, keys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}
