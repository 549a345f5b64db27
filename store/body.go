package store

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"
)

// Delivery bodies and run files are stored deflated when that pays: a webhook payload or a log
// is repetitive text that shrinks 5–10×, and on SQLite every page written is a system call and
// WAL bytes to sync. A stored body that starts with bodyMagic is deflated; anything else is the
// body as received. Data that itself starts with bodyMagic is always deflated, so the rule has
// no exception.
var bodyMagic = []byte("\x00ardf1")

const minCompressed = 1024

var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

func encodeBody(b []byte) []byte {
	// Data that happens to start like a deflated body is always stored deflated, or reading
	// it back would inflate what was never deflated.
	raw := bytes.HasPrefix(b, bodyMagic)
	if len(b) < minCompressed && !raw {
		return nz(b)
	}
	var buf bytes.Buffer
	buf.Grow(len(b)/4 + len(bodyMagic))
	buf.Write(bodyMagic)
	w := deflaters.Get().(*flate.Writer)
	defer deflaters.Put(w)
	w.Reset(&buf)
	if _, err := w.Write(b); err != nil {
		return b
	}
	if err := w.Close(); err != nil || (buf.Len() >= len(b) && !raw) {
		return b
	}
	return buf.Bytes()
}

func decodeBody(b []byte) ([]byte, error) {
	if !bytes.HasPrefix(b, bodyMagic) {
		return b, nil
	}
	out, err := io.ReadAll(flate.NewReader(bytes.NewReader(b[len(bodyMagic):])))
	if err != nil {
		return nil, fmt.Errorf("inflate stored body: %w", err)
	}
	return out, nil
}
