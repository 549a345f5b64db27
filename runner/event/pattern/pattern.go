// Package pattern compiles the branch, tag and path filter patterns of GitHub Actions
// ("Filter pattern cheat sheet") to regular expressions. It imports nothing from the project,
// so config validation and trigger matching share one compiler without an import cycle.
package pattern

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

// Pattern is one compiled filter pattern. A negated pattern (`!x`) matches what x matches;
// the negation only matters inside a List, where it excludes what earlier patterns included.
type Pattern struct {
	src    string
	negate bool
	// compiled, the regexp of expr, is built on the first Match (see re): validating a config
	// checks every pattern's syntax, but most patterns are never matched in that process,
	// and building the regexp is most of the cost of a pattern. The fields live in the
	// Pattern itself, so a pattern is one allocation (sync.OnceValue would add three).
	expr     string
	once     sync.Once
	compiled *regexp.Regexp
}

// Error says what is wrong in a pattern and where (Offset is a 0-based byte offset into
// Pattern), so config validation can point at the exact column.
type Error struct {
	Pattern string
	Offset  int
	Msg     string
}

func (e *Error) Error() string {
	return fmt.Sprintf("pattern %q: at offset %d: %s", e.Pattern, e.Offset, e.Msg)
}

// Compile turns a GitHub Actions filter pattern into a Pattern:
//
//   - `*` matches zero or more characters except `/`;
//   - `**` matches zero or more of any character, and `**/` also matches no directory at all
//     (so `**/README.md` matches `README.md`);
//   - `?` and `+` make the preceding character or `[]` class optional or repeated;
//   - `[...]` matches one character listed or in a range; only letters, digits and the ranges
//     a-z, A-Z, 0-9 (or parts of them) are allowed;
//   - `\` makes the next character literal;
//   - a leading `!` negates the pattern.
//
// The whole name must match.
func Compile(p string) (*Pattern, error) {
	pat := &Pattern{src: p}
	body, off := p, 0
	if strings.HasPrefix(body, "!") {
		pat.negate = true
		body, off = body[1:], 1
	}
	if body == "" {
		if pat.negate {
			return nil, &Error{Pattern: p, Offset: 1, Msg: "nothing follows the negating `!`"}
		}
		return nil, &Error{Pattern: p, Offset: 0, Msg: "empty pattern"}
	}
	var re strings.Builder
	re.WriteString(`^`)
	// repeatable is true when the last thing written is one character or class that `?` or
	// `+` may apply to; after a wildcard or a quantifier they would be meaningless.
	repeatable := false
	for i := 0; i < len(body); {
		c := body[i]
		pos := off + i
		switch c {
		case '*':
			switch {
			case strings.HasPrefix(body[i:], "**/"):
				re.WriteString(`(?:.*/)?`)
				i += 3
			case strings.HasPrefix(body[i:], "**"):
				re.WriteString(`.*`)
				i += 2
			default:
				re.WriteString(`[^/]*`)
				i++
			}
			repeatable = false
		case '?', '+':
			if !repeatable {
				return nil, &Error{Pattern: p, Offset: pos, Msg: fmt.Sprintf(
					"%q must follow a character or a [] class it repeats; write \\%c for a literal %c", c, c, c)}
			}
			re.WriteByte(c)
			i++
			repeatable = false
		case '[':
			end, class, err := compileClass(p, off, body, i)
			if err != nil {
				return nil, err
			}
			re.WriteString(class)
			i = end
			repeatable = true
		case '\\':
			if i+1 >= len(body) {
				return nil, &Error{Pattern: p, Offset: pos, Msg: "trailing \\ escapes nothing"}
			}
			r, size := utf8.DecodeRuneInString(body[i+1:])
			re.WriteString(regexp.QuoteMeta(string(r)))
			i += 1 + size
			repeatable = true
		default:
			r, size := utf8.DecodeRuneInString(body[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, &Error{Pattern: p, Offset: pos, Msg: "invalid UTF-8"}
			}
			re.WriteString(regexp.QuoteMeta(string(r)))
			i += size
			repeatable = true
		}
	}
	re.WriteString(`$`)
	pat.expr = re.String()
	return pat, nil
}

// re returns the pattern's regexp, building it on the first call.
func (p *Pattern) re() *regexp.Regexp {
	p.once.Do(func() {
		compiled, err := regexp.Compile(p.expr)
		if err != nil {
			// Unreachable by construction (FuzzCompile checks it); a pattern that somehow
			// fails matches nothing rather than crashing the matcher.
			compiled = nothing
		}
		p.compiled = compiled
	})
	return p.compiled
}

// nothing is the regexp of a pattern whose regexp could not be built.
var nothing = regexp.MustCompile(`^\b\B$`)

// compileClass reads the class that starts at body[start] == '[' and returns the index after
// its `]` and the regexp for it.
func compileClass(p string, off int, body string, start int) (int, string, error) {
	var cls strings.Builder
	cls.WriteByte('[')
	i := start + 1
	if i < len(body) && body[i] == ']' {
		return 0, "", &Error{Pattern: p, Offset: off + start, Msg: "empty [] class matches nothing"}
	}
	for {
		if i >= len(body) {
			return 0, "", &Error{Pattern: p, Offset: off + start, Msg: "[ is never closed by ]"}
		}
		c := body[i]
		if c == ']' {
			cls.WriteByte(']')
			return i + 1, cls.String(), nil
		}
		if !alnum(c) {
			return 0, "", &Error{Pattern: p, Offset: off + i, Msg: fmt.Sprintf(
				"%q is not allowed in a [] class: only letters, digits and ranges a-z, A-Z, 0-9", rune(c))}
		}
		if i+2 < len(body) && body[i+1] == '-' && body[i+2] != ']' {
			hi := body[i+2]
			if !sameRange(c, hi) || c > hi {
				return 0, "", &Error{Pattern: p, Offset: off + i, Msg: fmt.Sprintf(
					"range %c-%c is not within a-z, A-Z or 0-9", c, hi)}
			}
			cls.WriteByte(c)
			cls.WriteByte('-')
			cls.WriteByte(hi)
			i += 3
			continue
		}
		if i+1 < len(body) && body[i+1] == '-' {
			return 0, "", &Error{Pattern: p, Offset: off + i + 1, Msg: "range has no upper bound"}
		}
		cls.WriteByte(c)
		i++
	}
}

func alnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func sameRange(a, b byte) bool {
	in := func(lo, hi byte) bool { return lo <= a && a <= hi && lo <= b && b <= hi }
	return in('a', 'z') || in('A', 'Z') || in('0', '9')
}

// Match reports whether name matches the pattern, ignoring its negation.
func (p *Pattern) Match(name string) bool { return p.re().MatchString(name) }

// regexpValid reports whether the pattern's regexp was built; for tests.
func (p *Pattern) regexpValid() bool { return p.re() != nothing }

// Negated reports whether the pattern started with `!`.
func (p *Pattern) Negated() bool { return p.negate }

// String is the pattern as written.
func (p *Pattern) String() string { return p.src }

// List is an ordered filter list such as `branches:` or `paths:`. Order matters: a later
// matching pattern overrides an earlier one.
type List []*Pattern

// CompileList compiles every pattern and reports all errors, joined, in list order.
func CompileList(patterns []string) (List, error) {
	l := make(List, 0, len(patterns))
	var errs []error
	for _, s := range patterns {
		p, err := Compile(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		l = append(l, p)
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return l, nil
}

// Includes reports whether name is selected by the list: the last pattern that matches
// decides, included when it is positive and excluded when it is negated. A name no pattern
// matches is not included.
func (l List) Includes(name string) bool {
	in := false
	for _, p := range l {
		if p.Match(name) {
			in = !p.negate
		}
	}
	return in
}

// OnlyNegative reports whether the list holds patterns and none of them is positive, which
// GitHub rejects for `branches` and `tags` (such a list can never include anything).
func (l List) OnlyNegative() bool {
	if len(l) == 0 {
		return false
	}
	for _, p := range l {
		if !p.negate {
			return false
		}
	}
	return true
}

type multiError []error

func (m multiError) Error() string {
	s := make([]string, len(m))
	for i, e := range m {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

func (m multiError) Unwrap() []error { return m }

func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return multiError(errs)
}
