package server

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/internal/fixture"
)

// The scanner must agree with encoding/json on what is valid, or a payload the worker cannot
// decode would be queued (or a good one refused).
func TestTopLevelAgreesWithEncodingJSON(t *testing.T) {
	inputs := []string{
		`{}`, ` {"a":1} `, `{"a":[1,2,{"b":null}],"c":"x\"y\\u00e9\n"}`, `{"n":-0.5e+10,"m":0,"t":true,"f":false}`,
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":-}`, `{"a":"\x"}`, `{"a":"\u12G4"}`, "{\"a\":\"\x01\"}",
		`{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":1}{}`, `[1]`, `"s"`, `{"a":tru}`, `{"a":[1,]}`, `{"a":[}`, `{"a":"`,
		`{"a":{"b":{}}}`, `{"a":[[],[[]]]}`, `{"a":nul}`, `{"a":1 2}`, ``, `{`, `{"a":-01}`, `{"a":1E5}`,
		`{"a":"` + strings.Repeat("é", 100) + `"}`, `{"a":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}`,
	}
	for _, f := range fixture.Webhooks(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, string(b))
	}
	for _, in := range inputs {
		var m map[string]any
		want := json.Unmarshal([]byte(in), &m) == nil && m != nil
		if strings.Count(in, "[") > maxDepth {
			want = false // deeper than we accept on purpose
		}
		got := topLevel([]byte(in), func([]byte) bool { return false }, func(_, _ []byte) {}) == nil
		if got != want {
			name := in
			if len(name) > 60 {
				name = name[:60] + "…"
			}
			t.Errorf("%q: scanner valid=%v, encoding/json valid=%v", name, got, want)
		}
	}
}

func TestTopLevelReturnsRawValues(t *testing.T) {
	got := map[string]string{}
	err := topLevel([]byte(`{"action":"opened","x":{"action":"nested"},"deleted":true,"issue":{"pull_request":{}}}`),
		func(k []byte) bool { return string(k) != "x" },
		func(k, v []byte) { got[string(k)] = string(v) })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"action": `"opened"`, "deleted": "true", "issue": `{"pull_request":{}}`}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %v", got)
	}
}

func FuzzTopLevel(f *testing.F) {
	for _, s := range []string{`{}`, `{"action":"x","a":[1,{"b":-1.5e3}]}`, `{"a":"\u00e9"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m map[string]any
		want := json.Unmarshal(data, &m) == nil && m != nil
		got := topLevel(data, func([]byte) bool { return true }, func(_, _ []byte) {}) == nil
		if got != want && !(want && strings.Count(string(data), "[")+strings.Count(string(data), "{") > maxDepth) {
			t.Errorf("%q: scanner valid=%v, encoding/json valid=%v", data, got, want)
		}
	})
}
