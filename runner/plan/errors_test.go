package plan

import (
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/runner/event"
)

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings, each expected in the errors, in order
	}{
		{
			name: "secrets in a prompt are refused with the fix",
			yaml: `
on: {push: {}}
secrets: [TOKEN]
agents:
  a: {command: [x], image: i, prompt: "use ${{ secrets.TOKEN }}"}
`,
			want: []string{"r.yaml:5:48: agent a: prompt: in ${{ secrets.TOKEN }}: secrets are never interpolated"},
		},
		{
			name: "every broken expression of every agent is reported",
			yaml: `
on: {push: {}}
agents:
  a: {command: [x, "${{ evnt.ref }}"], image: i}
  b: {command: [x], image: i, needs: [a], if: "needs.a.result =="}
`,
			want: []string{`r.yaml:4:25: agent a: command[1]: in ${{ evnt.ref }}: unknown name "evnt"`,
				"r.yaml:5:64: agent b: if: in if: needs.a.result ==:"},
		},
		{
			name: "needs of an agent that is not waited for",
			yaml: `
on: {push: {}}
agents:
  a: {command: [x], image: i}
  b: {command: [x], image: i, prompt: "${{ needs.a.outputs.x }}"}
`,
			want: []string{"agent b: prompt reads needs.a, but a is not in the agent's needs"},
		},
		{
			name: "an error inside a block prompt points at its line",
			yaml: `
on: {push: {}}
agents:
  a:
    command: [x]
    image: i
    prompt: |
      Fix what the audit found.
      Then report on ${{ evnt.sha }}.
`,
			want: []string{`r.yaml:9: agent a: prompt: in ${{ evnt.sha }}: unknown name "evnt"`},
		},
		{
			name: "an error in a single-quoted env value points at its column",
			yaml: `
on: {push: {}}
env: {A: 'x ${{ inputs.a + }}'}
agents:
  a: {command: [x], image: i}
`,
			want: []string{`r.yaml:3:27: env.A: in ${{ inputs.a + }}`},
		},
		{
			name: "needs in a concurrency group",
			yaml: `
on: {push: {}}
concurrency: {group: "g-${{ needs.a.result }}"}
agents:
  a: {command: [x], image: i}
`,
			want: []string{"r.yaml:3:23: concurrency.group: needs is not available here"},
		},
		{
			name: "a static fan-out over the cap",
			yaml: `
on: {push: {}}
max-fan-out: 4
agents:
  a:
    command: [x]
    image: i
    replicas: 3
    matrix: {os: [l, m]}
`,
			want: []string{"r.yaml:9: agent a fans out to 6 instances (2 matrix combinations × 3 replicas), over the routine's max-fan-out of 4"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadYAML(t, map[string]string{"r.yaml": tt.yaml})
			errs := Compile(cfg)
			got := errs.Error()
			if len(errs) != len(tt.want) {
				t.Errorf("got %d errors, want %d:\n%s", len(errs), len(tt.want), got)
			}
			for i, w := range tt.want {
				if i < len(errs) && !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i].Error(), w)
				}
			}
		})
	}
}

const dispatchYAML = `
on:
  dispatch:
    inputs:
      scope: {default: all, options: [all, api]}
      depth: {required: true}
agents:
  a: {command: [x, "${{ inputs.scope }}", "${{ inputs.depth }}"], image: i}
`

func TestBuildDispatchInputs(t *testing.T) {
	tests := []struct {
		name   string
		inputs map[string]string
		argv   string
		err    string
	}{
		{"defaults fill what is not given", map[string]string{"depth": "2"}, "x all 2", ""},
		{"given values win", map[string]string{"depth": "2", "scope": "api"}, "x api 2", ""},
		{"a required input is missing", map[string]string{}, "", "input depth is required"},
		{"a value outside the options", map[string]string{"depth": "1", "scope": "web"}, "", `input scope is "web", want one of all, api`},
		{"an unknown input", map[string]string{"depth": "1", "deep": "x"}, "", "unknown input deep (inputs: scope, depth)"},
	}
	cfg := loadYAML(t, map[string]string{"d.yaml": dispatchYAML})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &event.Event{Kind: event.KindDispatch, SHA: "s"}
			p, err := Build(cfg, ev, Options{Routine: "d", Inputs: tt.inputs})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(p.Runs[0].Nodes[0].Instances[0].Argv, " "); got != tt.argv {
				t.Errorf("argv = %q, want %q", got, tt.argv)
			}
		})
	}
}

func TestBuildTargets(t *testing.T) {
	cfg := loadYAML(t, map[string]string{
		"d.yaml":    dispatchYAML,
		"push.yaml": "on: {push: {branches: [main]}}\nagents:\n  a: {command: [x], image: i}\n",
	})
	t.Run("a dispatch without a routine is an error", func(t *testing.T) {
		if _, err := Build(cfg, &event.Event{Kind: event.KindDispatch}, Options{}); err == nil {
			t.Error("Build succeeded")
		}
	})
	t.Run("a dispatch of a routine without on.dispatch is an error", func(t *testing.T) {
		_, err := Build(cfg, &event.Event{Kind: event.KindDispatch}, Options{Routine: "push"})
		if err == nil || !strings.Contains(err.Error(), "routine push cannot be dispatched") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("an unknown routine is an error naming the known ones", func(t *testing.T) {
		_, err := Build(cfg, pushEvent(), Options{Routine: "nope"})
		if err == nil || !strings.Contains(err.Error(), "routines: d, push") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("a push starts only matching routines and says why others were skipped", func(t *testing.T) {
		p, err := Build(cfg, pushEvent(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Runs) != 1 || p.Runs[0].Routine != "push" {
			t.Fatalf("runs = %+v", p.Runs)
		}
		if len(p.Skipped) != 1 || p.Skipped[0].Routine != "d" || p.Skipped[0].Reason == "" {
			t.Errorf("skipped = %+v", p.Skipped)
		}
	})
}

func TestBranchSafe(t *testing.T) {
	for in, want := range map[string]string{
		"main":            "main",
		"release/1.0":     "release/1.0",
		"audit api!":      "audit-api",
		"../../etc":       "etc",
		"a..b//c.lock":    "a.b/c",
		"  ":              "default",
		"feat: x; rm -rf": "feat-x-rm-rf",
	} {
		if got := branchSafe(in); got != want {
			t.Errorf("branchSafe(%q) = %q, want %q", in, got, want)
		}
	}
}
