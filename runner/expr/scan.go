package expr

import (
	"strconv"
	"strings"
)

// maxExprLen bounds one expression: nothing legitimate comes close, and it keeps the parser's
// recursion and the compile time of hostile input small.
const maxExprLen = 4096

// segment is one piece of a template: literal text, or an expression between `${{` and `}}`.
type segment struct {
	text   string // literal text, or the expression source without the delimiters
	isExpr bool
	offset int // byte offset of text in the template source
}

// scanError is a problem found while splitting or rewriting, at a byte offset of the template.
type scanError struct {
	offset int
	msg    string
}

// split cuts a template into literal text and expressions, appended to segs. A `}}` inside a
// quoted string does not close an expression. Callers pass a small array's slice as segs, so
// that splitting a short template allocates nothing.
func split(src string, segs []segment) ([]segment, *scanError) {
	i := 0
	for {
		j := strings.Index(src[i:], "${{")
		if j < 0 {
			if i < len(src) {
				segs = append(segs, segment{text: src[i:], offset: i})
			}
			return segs, nil
		}
		start := i + j
		if start > i {
			segs = append(segs, segment{text: src[i:start], offset: i})
		}
		body := start + 3
		end := closing(src, body)
		if end < 0 {
			return nil, &scanError{offset: start, msg: "unterminated ${{: missing }}"}
		}
		inner := src[body:end]
		if strings.TrimSpace(inner) == "" {
			return nil, &scanError{offset: start, msg: "empty ${{ }} expression"}
		}
		if len(inner) > maxExprLen {
			return nil, &scanError{offset: start, msg: "expression longer than " + strconv.Itoa(maxExprLen) + " bytes"}
		}
		segs = append(segs, segment{text: inner, isExpr: true, offset: body})
		i = end + 2
	}
}

// closing returns the offset of the `}}` that ends the expression starting at i, or -1.
func closing(src string, i int) int {
	for i < len(src) {
		switch c := src[i]; {
		case c == '\'':
			k := strings.IndexByte(src[i+1:], '\'')
			if k < 0 {
				return -1
			}
			i += k + 2
		case c == '"':
			i++
			for i < len(src) && src[i] != '"' {
				if src[i] == '\\' {
					i++
				}
				i++
			}
			i++
		case c == '}' && i+1 < len(src) && src[i+1] == '}':
			return i
		default:
			i++
		}
	}
	return -1
}

// funcNames maps GitHub function names (case-insensitive there) to the names they are
// registered under. contains, startsWith and endsWith are operators in expr-lang, and join,
// toJSON and fromJSON are builtins with other semantics, so every one gets an internal name.
var funcNames = map[string]string{
	"contains":   fnContains,
	"startswith": fnStartsWith,
	"endswith":   fnEndsWith,
	"format":     fnFormat,
	"join":       fnJoin,
	"tojson":     fnToJSON,
	"fromjson":   fnFromJSON,
	"success":    fnSuccess,
	"failure":    fnFailure,
	"always":     fnAlways,
	"cancelled":  fnCancelled,
}

// exprKeywords are words expr-lang's lexer treats as operators; as property names they are
// rewritten to index access so `inputs.in` still reads the input named "in".
var exprKeywords = map[string]bool{
	"in": true, "or": true, "and": true, "not": true, "matches": true, "contains": true,
	"startsWith": true, "endsWith": true, "let": true, "if": true, "else": true,
}

// rewrite turns GitHub expression syntax into expr-lang syntax without parsing it:
// 'single-quoted' strings with ” escapes become Go-quoted strings, property names with
// hyphens or keyword spellings become index access, GitHub function names get their internal
// names, and null becomes nil. It returns, for each byte of the result, the byte offset in src
// it came from, so error positions point at what the user wrote.
func rewrite(src string) (string, []int, *scanError) {
	var b strings.Builder
	b.Grow(len(src) + 8)
	offs := make([]int, 0, len(src)+8)
	emit := func(s string, from int) {
		b.WriteString(s)
		for range len(s) {
			offs = append(offs, from)
		}
	}
	// lastDot reports whether the previous emitted byte is a '.' that starts a property.
	lastDot := func() bool {
		s := b.String()
		return len(s) > 0 && s[len(s)-1] == '.' && (len(s) < 2 || s[len(s)-2] != '.')
	}
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\'':
			var val strings.Builder
			j := i + 1
			for {
				if j >= len(src) {
					return "", nil, &scanError{offset: i, msg: "unterminated string: missing closing '"}
				}
				if src[j] == '\'' {
					if j+1 < len(src) && src[j+1] == '\'' {
						val.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				val.WriteByte(src[j])
				j++
			}
			emit(strconv.Quote(val.String()), i)
			i = j + 1
		case c == '"':
			j := i + 1
			for j < len(src) && src[j] != '"' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) {
				return "", nil, &scanError{offset: i, msg: `unterminated string: missing closing "`}
			}
			for k := i; k <= j; k++ {
				emit(src[k:k+1], k)
			}
			i = j + 1
		case isIdentStart(c):
			property := lastDot()
			j := i + 1
			for j < len(src) && (isIdentChar(src[j]) || (property && src[j] == '-' && j+1 < len(src) && isIdentChar(src[j+1]))) {
				j++
			}
			word := src[i:j]
			switch {
			case property && (strings.Contains(word, "-") || exprKeywords[word]):
				// Replace the '.' just written by an index: a.my-agent → a["my-agent"].
				s := b.String()
				b.Reset()
				b.WriteString(s[:len(s)-1])
				offs = offs[:len(offs)-1]
				emit("["+strconv.Quote(word)+"]", i)
			case !property && followedByParen(src, j):
				if name, ok := funcNames[strings.ToLower(word)]; ok {
					word = name
				}
				emit(word, i)
			case !property && word == "null":
				emit("nil", i)
			default:
				emit(word, i)
			}
			i = j
		default:
			emit(src[i:i+1], i)
			i++
		}
	}
	return b.String(), offs, nil
}

func followedByParen(src string, j int) bool {
	for j < len(src) && (src[j] == ' ' || src[j] == '\t' || src[j] == '\n' || src[j] == '\r') {
		j++
	}
	return j < len(src) && src[j] == '('
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || (c >= '0' && c <= '9')
}
