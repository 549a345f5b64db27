package config

import (
	"strings"
	"testing"
	"time"
)

// TestHostileInputIsBounded: alias bombs and deep nesting end quickly with an error.
func TestHostileInputIsBounded(t *testing.T) {
	var bomb strings.Builder
	bomb.WriteString("x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < 10; i++ {
		prev := "*a" + string(rune('0'+i-1))
		bomb.WriteString("x" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [" + strings.Repeat(prev+", ", 8) + prev + "]\n")
	}
	tests := map[string]string{
		"alias bomb in with":   "on: push\nagents:\n  a:\n    uses: codex\n    prompt: p\n    image: i\n    with:\n      " + strings.ReplaceAll(bomb.String(), "\n", "\n      ") + "\n",
		"alias bomb in matrix": "on: push\nagents:\n  a:\n    command: [x]\n    image: i\n    matrix:\n      " + strings.ReplaceAll(bomb.String(), "\n", "\n      ") + "\n",
		"deep nesting":         "on: push\nagents: {a: {command: [x], image: i, with: {x: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "}}}\n",
		"self alias":           "a: &a\n  b: *a\n",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, errs := Parse("f.yaml", []byte(in))
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Parse took %v", took)
			}
			if errs == nil {
				t.Errorf("Parse accepted hostile input")
			}
		})
	}
}
