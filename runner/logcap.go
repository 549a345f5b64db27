package runner

import (
	"fmt"
	"io"
	"sync"

	"github.com/agentrunner/agentrunner/config"
)

// cappedLog is a job's log file bounded to limit bytes: the first half goes to the file as it
// comes, the last half is kept in a ring, and Close writes a line saying what was cut, then
// that tail. The live log stream is not affected; only what is stored is bounded.
type cappedLog struct {
	mu    sync.Mutex
	w     io.Writer
	limit int64
	head  int64 // bytes written to w so far, at most limit/2 before Close
	ring  []byte
	pos   int   // next write position in ring
	full  bool  // ring has wrapped
	cut   int64 // bytes that fell out of the ring
	err   error // the first write error of w; the log goes on regardless
}

func newCappedLog(w io.Writer, limit int64) *cappedLog {
	return &cappedLog{w: w, limit: limit}
}

func (c *cappedLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	if room := c.limit/2 - c.head; room > 0 {
		k := min(int64(len(p)), room)
		c.write(p[:k])
		c.head += k
		p = p[k:]
	}
	if len(p) == 0 {
		return n, nil
	}
	if c.ring == nil {
		c.ring = make([]byte, c.limit-c.limit/2)
	}
	size := len(c.ring)
	if len(p) > size {
		c.cut += int64(c.stored()) + int64(len(p)-size)
		p = p[len(p)-size:]
		c.pos, c.full = 0, false
	}
	if over := c.stored() + len(p) - size; over > 0 {
		c.cut += int64(over)
	}
	for len(p) > 0 {
		k := copy(c.ring[c.pos:], p)
		p = p[k:]
		c.pos += k
		if c.pos == size {
			c.pos, c.full = 0, true
		}
	}
	// A log write never fails the agent: the stream to the terminal and the parsers goes on.
	return n, nil
}

// stored is how many bytes the ring holds.
func (c *cappedLog) stored() int {
	if c.full {
		return len(c.ring)
	}
	return c.pos
}

func (c *cappedLog) write(p []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(p)
	}
}

// Close writes the note on what was cut, if anything, and the tail. It reports the first
// error writing the log met.
func (c *cappedLog) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut > 0 {
		c.write([]byte(fmt.Sprintf("\n[… %d bytes cut by agentrunner: the log exceeded %s; its first and last %s are kept …]\n",
			c.cut, config.FormatSize(c.limit), config.FormatSize(c.limit/2))))
	}
	if c.full {
		c.write(c.ring[c.pos:])
	}
	c.write(c.ring[:c.pos])
	c.ring = nil
	c.pos, c.full = 0, false
	return c.err
}
