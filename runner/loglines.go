package runner

import (
	"bytes"
	"sync"
)

// maxLogLine bounds the bytes held for one line: a longer line is passed on in pieces, so an
// agent that never prints a newline cannot make the runner hold its whole output.
const maxLogLine = 8 << 10

// lineWriter splits a job's log stream into lines and hands each, without its line break, to
// emit as it completes; Flush passes on a last line that has no line break. It sits beside
// log.txt on the same writer, so it sees exactly what is logged, secrets already masked.
type lineWriter struct {
	mu      sync.Mutex
	emit    func(line string)
	pending []byte
}

func newLineWriter(emit func(string)) *lineWriter { return &lineWriter{emit: emit} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.pending = append(w.pending, p...)
			for len(w.pending) >= maxLogLine {
				w.emit(string(w.pending[:maxLogLine]))
				w.pending = append(w.pending[:0], w.pending[maxLogLine:]...)
			}
			break
		}
		w.pending = append(w.pending, p[:i]...)
		p = p[i+1:]
		w.send()
	}
	return n, nil
}

// Flush passes on what is left of an unterminated last line.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) > 0 {
		w.send()
	}
}

func (w *lineWriter) send() {
	line := bytes.TrimSuffix(w.pending, []byte("\r"))
	for len(line) > maxLogLine {
		w.emit(string(line[:maxLogLine]))
		line = line[maxLogLine:]
	}
	w.emit(string(line))
	w.pending = w.pending[:0]
}
