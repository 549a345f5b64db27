package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Parse: it must never panic, and must either return a
// routine or at least one positioned error.
func FuzzLoad(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no examples to seed the corpus: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"", "on:\n\tpush: {}\n", "a: &a [*a]\n", "<<: {on: push}\n", "agents: {a: {needs: [a]}}\n",
		"on: push\nagents: {a: {matrix: {include: [1]}}}\n", "---\n---\n", "on: {schedule: [{cron: '@every 1h'}]}\n",
		"on: push\nsecrets: [T]\nconnectors: {r: {url: 'https://m.example/mcp', secret: T, tools: [a]}, l: {image: m, command: [m], secrets: [T], network: {allow: ['a.b:443']}}}\n" +
			"agents: {a: {uses: aider, prompt: p, image: i, network: open, connectors: {r: {image: x}, o: {url: x}}}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, errs := Parse("fuzz.yaml", data)
		if r == nil && len(errs) == 0 {
			t.Fatal("Parse returned neither a routine nor an error")
		}
		for _, e := range errs {
			if e.Pos.File != "fuzz.yaml" || e.Msg == "" {
				t.Fatalf("error without file or message: %+v", e)
			}
			if e.Pos.Line < 0 || e.Pos.Col < 0 {
				t.Fatalf("negative position: %+v", e)
			}
		}
	})
}
