package sandbox

import (
	"bytes"
	"io"
	"sort"
	"sync"
)

// Mask replaces secret values in logs.
const Mask = "***"

// MaskingWriter replaces every occurrence of a secret value with Mask before writing to the
// underlying writer, also when a value arrives split across several writes: the bytes that
// could begin a secret are held back until the next write or Flush. It is safe for concurrent
// use.
type MaskingWriter struct {
	mu      sync.Mutex
	w       io.Writer
	secrets [][]byte // longest first, so a secret containing another is masked whole
	pending []byte
}

// NewMaskingWriter returns a writer that masks secrets (empty values are ignored) on their way
// to w. Call Flush when done so held-back bytes are written.
func NewMaskingWriter(w io.Writer, secrets []string) *MaskingWriter {
	m := &MaskingWriter{w: w}
	for _, s := range secrets {
		if s != "" {
			m.secrets = append(m.secrets, []byte(s))
		}
	}
	sort.Slice(m.secrets, func(i, j int) bool { return len(m.secrets[i]) > len(m.secrets[j]) })
	return m
}

// Write masks and forwards p; it reports len(p) on success even when some bytes are held back.
func (m *MaskingWriter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.secrets) == 0 {
		return m.w.Write(p)
	}
	buf := append(m.pending, p...)
	out, rest := m.mask(buf)
	m.pending = append([]byte(nil), rest...)
	if len(out) > 0 {
		if _, err := m.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush writes the held-back bytes: at the end of the stream they cannot be a secret's start.
func (m *MaskingWriter) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.pending) == 0 {
		return nil
	}
	_, err := m.w.Write(m.pending)
	m.pending = nil
	return err
}

// mask returns the masked bytes safe to write now and the tail to hold back: the longest
// suffix of buf that is a proper prefix of some secret.
func (m *MaskingWriter) mask(buf []byte) (out, rest []byte) {
	var b bytes.Buffer
	i := 0
scan:
	for i < len(buf) {
		for _, s := range m.secrets {
			if bytes.HasPrefix(buf[i:], s) {
				b.WriteString(Mask)
				i += len(s)
				continue scan
			}
		}
		// Hold back from the first position where the remaining bytes start a secret.
		for _, s := range m.secrets {
			if len(buf)-i < len(s) && bytes.HasPrefix(s, buf[i:]) {
				return b.Bytes(), buf[i:]
			}
		}
		b.WriteByte(buf[i])
		i++
	}
	return b.Bytes(), nil
}

// MaskString returns s with every secret value replaced by Mask, exactly as a MaskingWriter
// would write it: for whole texts (a report, an output, an error) rather than streams.
func MaskString(s string, secrets []string) string {
	if s == "" {
		return s
	}
	var b bytes.Buffer
	m := NewMaskingWriter(&b, secrets)
	if len(m.secrets) == 0 {
		return s
	}
	_, _ = m.Write([]byte(s)) // a bytes.Buffer does not fail
	_ = m.Flush()
	return b.String()
}
