package plan

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/runner/event"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current output")

// eventFile is testdata/<case>.event.json: the normalized event, its raw payload, and the
// Build options.
type eventFile struct {
	Event   event.Event    `json:"event"`
	Payload map[string]any `json:"payload"`
	Options struct {
		Routine string            `json:"routine"`
		Inputs  map[string]string `json:"inputs"`
		Env     map[string]string `json:"env"`
	} `json:"options"`
}

// loadCase loads testdata/<name>.yaml as the only routine of a config, and its event.
func loadCase(t testing.TB, name string) (*config.Config, *event.Event, Options) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFS(fstest.MapFS{name + ".yaml": {Data: data}}, ".")
	if err != nil {
		t.Fatalf("load %s.yaml: %v", name, err)
	}
	raw, err := os.ReadFile(filepath.Join("testdata", name+".event.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ef eventFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ef); err != nil {
		t.Fatalf("decode %s.event.json: %v", name, err)
	}
	ev := ef.Event
	ev.Payload = ef.Payload
	return cfg, &ev, Options{Routine: ef.Options.Routine, Inputs: ef.Options.Inputs, Env: ef.Options.Env}
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("found %d golden cases, want at least 6", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			cfg, ev, opts := loadCase(t, name)
			if errs := Compile(cfg); len(errs) > 0 {
				t.Fatalf("Compile: %v", errs)
			}
			p, err := Build(cfg, ev, opts)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			got, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatalf("golden %s: %v", golden, err)
			}
			if diff := cmp.Diff(w, g); diff != "" {
				t.Errorf("plan differs from %s (-want +got); run go test -update if the change is intended:\n%s", golden, diff)
			}
		})
	}
}
