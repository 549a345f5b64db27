package server

import (
	"errors"
	"fmt"
)

// maxDepth bounds nesting so a hostile (but signed) payload cannot exhaust the stack.
const maxDepth = 512

// topLevel validates that data is one JSON object (RFC 8259 syntax, as encoding/json accepts
// it) and returns the raw values of the wanted top-level keys, in one pass without allocating
// per value. encoding/json would scan a 25 KB payload twice (validate, then decode) and cost
// twenty times the signature check; the worker decodes the payload fully later anyway.
func topLevel(data []byte, want func(key []byte) bool, found func(key, value []byte)) error {
	s := scanner{data: data}
	s.ws()
	if s.peek() != '{' {
		return errors.New("payload is not a JSON object")
	}
	if err := s.object(0, func(key, value []byte) {
		if want(key) {
			found(key, value)
		}
	}); err != nil {
		return err
	}
	s.ws()
	if s.i != len(s.data) {
		return s.errf("data after the top-level object")
	}
	return nil
}

type scanner struct {
	data []byte
	i    int
}

func (s *scanner) errf(msg string) error {
	return fmt.Errorf("invalid JSON at byte %d: %s", s.i, msg)
}

func (s *scanner) peek() byte {
	if s.i < len(s.data) {
		return s.data[s.i]
	}
	return 0
}

func (s *scanner) ws() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) value(depth int) error {
	if depth > maxDepth {
		return s.errf("nested too deeply")
	}
	switch c := s.peek(); {
	case c == '"':
		return s.str()
	case c == '{':
		return s.object(depth, nil)
	case c == '[':
		s.i++
		s.ws()
		if s.peek() == ']' {
			s.i++
			return nil
		}
		for {
			s.ws()
			if err := s.value(depth + 1); err != nil {
				return err
			}
			s.ws()
			c := s.peek()
			s.i++
			if c == ']' {
				return nil
			}
			if c != ',' {
				return s.errf("expected ',' or ']' in array")
			}
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	return s.errf("expected a value")
}

// object scans the object starting at its '{', whose members are at depth+1. each, when set,
// gets every member's key (without quotes) and raw value, in order.
func (s *scanner) object(depth int, each func(key, value []byte)) error {
	s.i++
	s.ws()
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		s.ws()
		kStart := s.i
		if err := s.str(); err != nil {
			return err
		}
		key := s.data[kStart+1 : s.i-1]
		s.ws()
		if s.peek() != ':' {
			return s.errf("expected ':' after object key")
		}
		s.i++
		s.ws()
		vStart := s.i
		if err := s.value(depth + 1); err != nil {
			return err
		}
		if each != nil {
			each(key, s.data[vStart:s.i])
		}
		s.ws()
		c := s.peek()
		s.i++
		if c == '}' {
			return nil
		}
		if c != ',' {
			return s.errf("expected ',' or '}' in object")
		}
	}
}

func (s *scanner) literal(lit string) error {
	if len(s.data)-s.i < len(lit) || string(s.data[s.i:s.i+len(lit)]) != lit {
		return s.errf("expected " + lit)
	}
	s.i += len(lit)
	return nil
}

// str scans a string starting at its opening quote and leaves s.i after the closing one.
func (s *scanner) str() error {
	if s.peek() != '"' {
		return s.errf("expected a string")
	}
	s.i++
	for s.i < len(s.data) {
		// Fast path: plain characters, which are nearly all of a payload.
		for s.i < len(s.data) && !special[s.data[s.i]] {
			s.i++
		}
		if s.i >= len(s.data) {
			break
		}
		c := s.data[s.i]
		switch {
		case c == '"':
			s.i++
			return nil
		case c == '\\':
			s.i++
			switch s.peek() {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if len(s.data)-s.i < 5 || !isHex(s.data[s.i+1]) || !isHex(s.data[s.i+2]) || !isHex(s.data[s.i+3]) || !isHex(s.data[s.i+4]) {
					return s.errf(`bad \u escape`)
				}
				s.i += 5
			default:
				return s.errf("bad escape in string")
			}
		case c < 0x20:
			return s.errf("control character in string")
		default:
			s.i++
		}
	}
	return s.errf("unterminated string")
}

// special marks the bytes that end the fast path of a string: the quote, the backslash and
// control characters.
var special = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.data) && '0' <= s.data[s.i] && s.data[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) number() error {
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return s.errf("bad number")
	}
	if s.peek() == '.' {
		s.i++
		if s.digits() == 0 {
			return s.errf("bad number: no digits after '.'")
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if s.digits() == 0 {
			return s.errf("bad number: no digits in exponent")
		}
	}
	return nil
}
