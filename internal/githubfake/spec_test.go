package githubfake

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConvertNullable(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"a typed nullable becomes a type union", `{"type":"string","nullable":true}`, `{"type":["string","null"]}`},
		{"a nullable enum also accepts null", `{"type":"string","enum":["a"],"nullable":true}`, `{"enum":["a",null],"type":["string","null"]}`},
		{"an untyped nullable becomes anyOf", `{"allOf":[{"$ref":"#/x"}],"nullable":true}`, `{"anyOf":[{"allOf":[{"$ref":"#/x"}]},{"type":"null"}]}`},
		{"nested schemas are converted", `{"properties":{"a":{"type":"integer","nullable":true}}}`, `{"properties":{"a":{"type":["integer","null"]}}}`},
		{"nullable false is left alone", `{"type":"string","nullable":false}`, `{"nullable":false,"type":"string"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(tc.in), &v); err != nil {
				t.Fatal(err)
			}
			if got := string(mustJSON(convertNullable(v))); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestFindSpecReadsTheCopyInTheRepository(t *testing.T) {
	t.Setenv(SpecEnv, "")
	got, err := findSpec()
	if err != nil {
		t.Fatal(err)
	}
	want, err := filepath.Abs(filepath.Join("..", "..", "testdata", "github", "openapi-subset.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("findSpec = %q, want the committed copy %q", got, want)
	}
}

func TestFindSpecFailsClearlyWhenTheDescriptionIsAbsent(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "pkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(SpecEnv, "")
	t.Chdir(filepath.Join(dir, "pkg"))
	_, err := findSpec()
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "testdata", "github", "openapi-subset.json")) {
		t.Errorf("err = %v, want it to name the path it looked for", err)
	}

	t.Setenv(SpecEnv, filepath.Join(dir, "nope.json"))
	if _, err := findSpec(); err == nil || !strings.Contains(err.Error(), SpecEnv) {
		t.Errorf("bad %s: err = %v", SpecEnv, err)
	}
}

func TestEveryDescribedOperationIsSimulated(t *testing.T) {
	s, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingTB{TB: t}
	f := New(rec)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, op := range s.ops {
		params := map[string]string{"owner": "o", "repo": "r", "installation_id": "1", "check_run_id": "1",
			"ref": "heads/main", "path": "x", "pull_number": "1", "issue_number": "1", "comment_id": "1", "username": "u", "branch": "main"}
		in := map[string]any{"ref": "refs/heads/x", "sha": "s", "name": "n", "head_sha": "s", "title": "t", "head": "h", "base": "main", "body": "b"}
		f.handle(op, params, nil, in)
	}
	if len(rec.errors()) != 0 {
		t.Errorf("operations described but not simulated: %q", rec.errors())
	}
}
