package preset

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzParse checks the invariants every parser keeps on any input: no panic, a non-nil
// Result, OK only without an error, and sane counts. Seeds are the testdata samples of the
// preset (committed corpus entries live in testdata/fuzz/<FuzzName>/).
func fuzzParse(f *testing.F, name, prefix string) {
	p, ok := Get(name)
	if !ok {
		f.Fatalf("preset %q is not registered", name)
	}
	files, err := filepath.Glob(filepath.Join("testdata", prefix+"-*"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds for %s: %v", name, err)
	}
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, 0)
	}
	f.Fuzz(func(t *testing.T, out []byte, exit int) {
		r, err := p.Parse(out)
		if r == nil {
			t.Fatal("nil Result")
		}
		if r.OK && (r.Error != "" || err != nil) {
			t.Fatalf("OK with Error %q, err %v", r.Error, err)
		}
		if !r.OK && r.Error == "" {
			t.Fatal("a failure without a reason")
		}
		if r.InputTokens < 0 || r.OutputTokens < 0 || r.Turns < 0 || r.CostUSD < 0 {
			t.Fatalf("negative counts: %+v", r)
		}
		if len(r.Final) > len(out)+len("…") {
			t.Fatalf("Final (%d bytes) longer than the output (%d)", len(r.Final), len(out))
		}
		e, _ := p.Evaluate(out, exit)
		if exit != 0 && (e.OK || !strings.HasPrefix(e.Error, "exit code ")) {
			t.Fatalf("Evaluate(exit %d) = OK %v, Error %q", exit, e.OK, e.Error)
		}
	})
}

func FuzzParseClaude(f *testing.F) { fuzzParse(f, "claude-code", "claude") }
func FuzzParseCodex(f *testing.F)  { fuzzParse(f, "codex", "codex") }
func FuzzParseGemini(f *testing.F) { fuzzParse(f, "gemini", "gemini") }
func FuzzParseAider(f *testing.F)  { fuzzParse(f, "aider", "aider") }
