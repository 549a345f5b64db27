package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite schema/agents.schema.json")

const schemaFile = "../schema/agents.schema.json"

func TestSchemaFileUpToDate(t *testing.T) {
	want := Schema()
	if *update {
		if err := os.MkdirAll(filepath.Dir(schemaFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(schemaFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatalf("read the committed schema: %v (run: go test ./config -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with the key tables in config; run: go test ./config -run TestSchemaFileUpToDate -update", schemaFile)
	}
}

func compileSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
	return s
}

// yamlToJSON gives the schema validator what an editor's YAML language server would see.
func yamlToJSON(t testing.TB, data []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestExamplesMatchSchema(t *testing.T) {
	s := compileSchema(t)
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) < 6 {
		t.Fatalf("examples: %v, %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if first, _, _ := strings.Cut(string(data), "\n"); first != "# yaml-language-server: $schema=../../schema/agents.schema.json" {
				t.Errorf("first line = %q, want the yaml-language-server schema comment", first)
			}
			if err := s.Validate(yamlToJSON(t, data)); err != nil {
				t.Errorf("schema rejects %s:\n%v", f, err)
			}
			if _, errs := Parse(f, data); errs != nil {
				t.Errorf("Parse rejects %s:\n%v", f, errs)
			}
		})
	}
}

// TestSchemaAgreesWithDecoder feeds the same documents to both: shapes one accepts the other
// must accept too. (The decoder checks more, like cross-references; those cases are not here.)
func TestSchemaAgreesWithDecoder(t *testing.T) {
	s := compileSchema(t)
	const head = "on: push\ndefaults: {image: i}\nagents:\n"
	tests := []struct {
		name string
		yaml string
		ok   bool
	}{
		{"short on", "on: push\nagents: {a: {command: [x], image: i}}\n", true},
		{"on list", "on: [push, dispatch]\nagents: {a: {command: [x], image: i}}\n", true},
		{"empty trigger blocks", "on: {push: , pull_request: {}, webhook: {secret: S}}\nagents: {a: {command: [x], image: i}}\n", true},
		{"needs as one name", head + "  a: {command: [x]}\n  b: {command: [x], needs: a}\n", true},
		{"memory in bytes", head + "  a: {command: [x], resources: {memory: 8388608, cpus: 0.5}}\n", true},
		{"network open", head + "  a: {command: [x], network: open}\n", true},
		{"network allow", head + "  a: {command: [x], network: {allow: ['a.b:1']}}\n", true},
		{"string concurrency", "concurrency: g\n" + head + "  a: {command: [x]}\n", true},
		{"numeric user and env", "env: {N: 1}\n" + head + "  a: {command: [x], user: 1000}\n", true},
		{"matrix expression", head + "  a: {command: [x], matrix: '${{ fromJSON(x) }}'}\n", true},
		{"matrix axes", head + "  a: {command: [x], matrix: {os: [l, m], n: '${{ x }}', include: [{os: w}]}}\n", true},
		{"connectors", "secrets: [T]\nconnectors:\n  r: {url: 'https://m.example/mcp', secret: T, tools: [a, b]}\n  l: {image: m, command: [m, --stdio], env: {A: 1}, secrets: [T], network: {allow: ['a.b:443']}}\n" +
			head + "  a: {command: [x], connectors: {own: {image: o, network: none}}}\n", true},
		{"a connector with url and image", "connectors: {c: {url: 'https://m.example/mcp', image: m}}\n" + head + "  a: {command: [x]}\n", false},
		{"a connector with neither url nor image", "connectors: {c: {tools: [t]}}\n" + head + "  a: {command: [x]}\n", false},
		{"a local connector with a secret", "secrets: [T]\nconnectors: {c: {image: m, secret: T}}\n" + head + "  a: {command: [x]}\n", false},
		{"a remote connector with a command", head + "  a: {command: [x], connectors: {c: {url: 'https://m.example/mcp', command: [m]}}}\n", false},
		{"an open connector", "connectors: {c: {image: m, network: open}}\n" + head + "  a: {command: [x]}\n", false},
		{"a relative connector url", "connectors: {c: {url: /mcp}}\n" + head + "  a: {command: [x]}\n", false},
		{"a bad connector name", "connectors: {'c d': {image: m}}\n" + head + "  a: {command: [x]}\n", false},
		{"a connector tool twice", "connectors: {c: {image: m, tools: [t, t]}}\n" + head + "  a: {command: [x]}\n", false},
		{"no connector tools", "connectors: {c: {image: m, tools: []}}\n" + head + "  a: {command: [x]}\n", false},
		{"unknown agent key", head + "  a: {command: [x], need: [b]}\n", false},
		{"unknown routine key", "foo: 1\n" + head + "  a: {command: [x]}\n", false},
		{"unknown trigger", "on: {pusj: {}}\nagents: {a: {command: [x], image: i}}\n", false},
		{"bad network mode", head + "  a: {command: [x], network: closed}\n", false},
		{"bad changes", head + "  a: {command: [x], changes: kept}\n", false},
		{"string command", head + "  a: {command: make test}\n", false},
		{"replicas zero", head + "  a: {command: [x], replicas: 0}\n", false},
		{"duration without unit", head + "  a: {command: [x], timeout: '30'}\n", false},
		{"bad size", head + "  a: {command: [x], resources: {memory: 2x}}\n", false},
		{"unknown preset", head + "  a: {uses: nope, prompt: p}\n", false},
		{"bad pr type", "on: {pull_request: {types: [opend]}}\nagents: {a: {command: [x], image: i}}\n", false},
		{"schedule without cron", "on: {schedule: [{timezone: UTC}]}\nagents: {a: {command: [x], image: i}}\n", false},
		{"no agents", "on: push\n", false},
		{"matrix axis scalar", head + "  a: {command: [x], matrix: {os: linux}}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := Parse("f.yaml", []byte(tt.yaml))
			serr := s.Validate(yamlToJSON(t, []byte(tt.yaml)))
			if (errs == nil) != tt.ok {
				t.Errorf("decoder ok = %v, want %v: %v", errs == nil, tt.ok, errs)
			}
			if (serr == nil) != tt.ok {
				t.Errorf("schema ok = %v, want %v: %v", serr == nil, tt.ok, serr)
			}
		})
	}
}
