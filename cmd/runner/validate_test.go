package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/config"
)

// chdir moves the test into dir and back; tests using it cannot run in parallel.
func chdir(t *testing.T, dir string) {
	t.Helper()
	old, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chdir(old) })
}

func writeAgents(t *testing.T, files map[string]string) string {
	t.Helper()
	repo := t.TempDir()
	if err := os.Mkdir(filepath.Join(repo, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(repo, ".agents")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return repo
}

const okRoutine = "on: push\ndefaults: {image: i}\nagents:\n  a: {uses: codex, prompt: p}\n  b: {command: [make], needs: [a]}\n"

func TestValidate(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		args     []string
		sub      string // run from this subdirectory of the repo
		wantCode int
		wantOut  []string // lines of stdout, in order
	}{
		{name: "valid routines print one summary line", files: map[string]string{"a.yaml": okRoutine, "b.yml": okRoutine},
			args: []string{"validate"}, wantCode: 0, wantOut: []string{".agents: 2 routines, 4 agents OK"}},
		{name: "the .agents of the enclosing repository is found from a subdirectory", files: map[string]string{"a.yaml": okRoutine},
			args: []string{"validate"}, sub: "src/pkg", wantCode: 0, wantOut: []string{"../../.agents: 1 routine, 2 agents OK"}},
		{name: "wrong indentation", files: map[string]string{"r.yaml": "on: push\ndefaults: {image: i}\nagents:\n  a:\n    uses: codex\n    prompt: p\n   needs: [b]\n"},
			args: []string{"validate"}, wantCode: 1, wantOut: []string{".agents/r.yaml:7:4: bad indentation: this line does not line up with the keys of the mapping it belongs to"}},
		{name: "a tab", files: map[string]string{"r.yaml": "on:\n\tpush: {}\n"},
			args: []string{"validate"}, wantCode: 1, wantOut: []string{".agents/r.yaml:2:1: tabs are not allowed for indentation; use spaces"}},
		{name: "a misspelt key, needs on a missing agent, a cycle and a bad cron, all at once",
			files: map[string]string{
				"a.yaml": "on: {schedule: [{cron: '61 * * * *'}]}\ndefaults: {image: i}\nagents:\n  a: {command: [x], needs: [c]}\n  c: {command: [x], needs: [a], timout: 5m}\n",
				"b.yaml": "on: push\ndefaults: {image: i}\nagents:\n  x: {command: [x], needs: [y]}\n"},
			args: []string{"validate", ".agents"}, wantCode: 1, wantOut: []string{
				`.agents/a.yaml:1:24: cron "61 * * * *" is not valid: end of range (61) above maximum (59): 61; write 5 fields, minute hour day-of-month month day-of-week, like "0 3 * * 1-5", or a shortcut like @daily`,
				`.agents/a.yaml:4:3: needs cycle: a -> c -> a; an agent cannot (indirectly) need itself: remove one of these needs`,
				`.agents/a.yaml:5:33: unknown key "timout" in agent "c"; did you mean "timeout"?`,
				`.agents/b.yaml:4:29: agent "x" needs "y", but there is no agent "y" in this routine; valid: x`,
			}},
		{name: "a bad expression is reported by the planner's compiler", files: map[string]string{"r.yaml": "on: push\ndefaults: {image: i}\nagents:\n  a: {uses: codex, prompt: \"${{ nope.x }}\"}\n"},
			args: []string{"validate"}, wantCode: 1},
		{name: "an empty directory is an error", files: map[string]string{}, args: []string{"validate"}, wantCode: 1,
			wantOut: []string{".agents: no routine files (*.yaml, *.yml); add one, see examples/.agents"}},
		{name: "too many arguments is a usage error", files: map[string]string{}, args: []string{"validate", "a", "b"}, wantCode: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := writeAgents(t, tt.files)
			dir := filepath.Join(repo, tt.sub)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			chdir(t, dir)
			var out, errOut bytes.Buffer
			code := run(t.Context(), tt.args, strings.NewReader(""), &out, &errOut)
			if code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, out.String(), errOut.String())
			}
			if tt.wantOut == nil {
				return
			}
			got := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.wantOut, "\n") {
				t.Errorf("stdout:\n%s\nwant:\n%s", out.String(), strings.Join(tt.wantOut, "\n"))
			}
		})
	}
}

func TestValidateOutsideARepository(t *testing.T) {
	chdir(t, t.TempDir())
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"validate"}, nil, &out, &errOut); code != 1 {
		t.Fatalf("exit code = %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), "is not inside a git repository; pass the directory to check") {
		t.Errorf("stderr = %q", errOut.String())
	}
}

func TestValidateExamples(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"validate", "../../examples/.agents"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("examples do not validate (exit %d):\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.HasSuffix(out.String(), "OK\n") {
		t.Errorf("stdout = %q", out.String())
	}
}

func TestSchemaCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"schema"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("exit code = %d: %s", code, errOut.String())
	}
	if !bytes.Equal(out.Bytes(), config.Schema()) {
		t.Error("runner schema does not print config.Schema()")
	}
	committed, err := os.ReadFile("../../schema/agents.schema.json")
	if err != nil || !bytes.Equal(committed, out.Bytes()) {
		t.Errorf("runner schema differs from schema/agents.schema.json (err %v)", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil || doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("schema is not a draft 2020-12 JSON document: %v", err)
	}
	if code := run(t.Context(), []string{"schema", "extra"}, nil, &out, &errOut); code != 2 {
		t.Errorf("schema with an argument: exit %d, want 2", code)
	}
}
