package preset

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
)

// errNoOutput and errNoResult tell an empty run from one whose output lacks the result.
var (
	errNoOutput = errors.New("no output")
	errNoResult = errors.New("no result in output")
)

// jobj is a decoded JSON object read leniently: a field of an unexpected type reads as its
// zero value instead of failing the whole result, because CLI output formats drift between
// versions and a missing cost must not hide a failure.
type jobj map[string]any

// objects returns every JSON object that begins a line of out (after optional blanks), in
// order. Objects may span lines (gemini pretty-prints); lines that are not JSON (logs,
// warnings, progress) are skipped, and so is a truncated object.
//
// A failed attempt is retried from the next line, which finds an object hidden behind a line
// that opened a structure it never closed. Output is untrusted (the agent writes it), and
// lines like `{"a":[` repeated would make that quadratic, so once the bytes re-read by failed
// attempts exceed a few times the output, a failure skips everything its attempt read.
func objects(out []byte) []jobj {
	var res []jobj
	budget := 4*len(out) + 1<<16
	off := 0
	for off < len(out) {
		i := off
		for i < len(out) && (out[i] == ' ' || out[i] == '\t' || out[i] == '\r') {
			i++
		}
		if i < len(out) && out[i] == '{' {
			dec := json.NewDecoder(bytes.NewReader(out[i:]))
			var m map[string]any
			err := dec.Decode(&m)
			if err == nil {
				res = append(res, m)
				off = i + int(dec.InputOffset())
			} else {
				used := len(out) - i
				var se *json.SyntaxError
				if errors.As(err, &se) && se.Offset > 0 && int(se.Offset) < used {
					used = int(se.Offset)
				}
				if budget -= used; budget < 0 {
					off = i + used - 1 // stay on the line where the attempt failed
				}
			}
		}
		nl := bytes.IndexByte(out[off:], '\n')
		if nl < 0 {
			break
		}
		off += nl + 1
	}
	return res
}

func (o jobj) str(k string) string {
	s, _ := o[k].(string)
	return s
}

func (o jobj) obj(k string) jobj {
	m, _ := o[k].(map[string]any)
	return m
}

func (o jobj) arr(k string) []any {
	a, _ := o[k].([]any)
	return a
}

func (o jobj) boolean(k string) bool {
	b, _ := o[k].(bool)
	return b
}

func (o jobj) has(k string) bool {
	_, ok := o[k]
	return ok
}

// num reads a number, or 0.
func (o jobj) num(k string) float64 {
	f, _ := o[k].(float64)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// count reads a non-negative count, clamped so sums cannot overflow.
func (o jobj) count(k string) int {
	return clampCount(o.num(k))
}

const maxCount = 1 << 40

func clampCount(f float64) int {
	switch {
	case !(f > 0): // also NaN
		return 0
	case f > maxCount:
		return maxCount
	}
	return int(f)
}

func addCount(a, b int) int {
	if a+b > maxCount {
		return maxCount
	}
	return a + b
}

// tail returns the last n lines of s, trimmed, at most max bytes (cut on a rune boundary).
func tail(s string, n, max int) string {
	s = strings.TrimRight(s, " \t\r\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	s = strings.TrimSpace(strings.Join(lines, "\n"))
	if len(s) > max {
		cut := len(s) - max
		for cut < len(s) && s[cut]&0xC0 == 0x80 { // skip UTF-8 continuation bytes
			cut++
		}
		s = "…" + s[cut:]
	}
	return s
}
