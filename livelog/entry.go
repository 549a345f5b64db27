package livelog

import (
	"sync"
	"time"
)

// entry is one job's log as it is written: the newest bytes in a ring of bounded size, with
// absolute offsets, so every follower reads from the same copy at its own position and the
// memory a job costs does not grow with its log or with the number of people watching.
type entry struct {
	mu   sync.Mutex
	ring []byte // grows to its bound, then wraps
	max  int
	end  int64 // bytes written so far; the ring holds [end-len(held), end)
	held int   // bytes of the ring in use
	done bool
	// changed is closed (and replaced) when bytes are written or the log ends: followers wait
	// on it instead of polling.
	changed chan struct{}
	subs    int
	last    time.Time // when the last follower left, or the log ended
}

func newEntry(max int) *entry {
	return &entry{max: max, changed: make(chan struct{})}
}

// Write appends p. It never blocks on followers and never fails: a slow reader falls behind
// within the ring, never the agent.
func (e *entry) Write(p []byte) (int, error) {
	n := len(p)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done || n == 0 {
		return n, nil
	}
	at := e.end
	e.end += int64(n)
	if len(p) > e.max {
		at += int64(len(p) - e.max)
		p = p[len(p)-e.max:]
	}
	if e.end <= int64(e.max) {
		// Still growing: the ring is a plain slice holding offsets [0, end).
		e.ring = append(e.ring, p...)
		e.held = int(e.end)
	} else {
		// Full: the byte at offset o sits at index o % max, and every index holds one.
		if len(e.ring) < e.max {
			e.ring = append(e.ring, make([]byte, e.max-len(e.ring))...)
		}
		for len(p) > 0 {
			k := copy(e.ring[int(at%int64(e.max)):], p)
			p = p[k:]
			at += int64(k)
		}
		e.held = e.max
	}
	e.wake()
	return n, nil
}

// finish marks the log complete.
func (e *entry) finish() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.done {
		e.done = true
		e.last = time.Now()
		e.wake()
	}
}

func (e *entry) wake() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// view is what a follower at offset from can read now.
type view struct {
	data  []byte // bytes from max(from, start) to end, at most limit of them
	start int64  // the oldest offset the ring still holds
	end   int64
	done  bool
	// changed is closed when there is more to read than this view saw.
	changed <-chan struct{}
}

// read copies out the bytes from offset from (or from the ring's oldest when from is older),
// into buf when it is large enough.
func (e *entry) read(from int64, limit int, buf []byte) view {
	e.mu.Lock()
	defer e.mu.Unlock()
	v := view{start: e.end - int64(e.held), end: e.end, done: e.done, changed: e.changed}
	from = max(from, v.start)
	n := int(min(e.end-from, int64(limit)))
	if n <= 0 {
		return v
	}
	if cap(buf) >= n {
		v.data = buf[:n]
	} else {
		v.data = make([]byte, n)
	}
	if len(e.ring) < e.max {
		copy(v.data, e.ring[from:e.end])
		return v
	}
	at := int(from % int64(e.max))
	k := copy(v.data, e.ring[at:])
	copy(v.data[k:], e.ring[:n-k])
	return v
}

func (e *entry) follow(delta int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.subs += delta
	if e.subs == 0 {
		e.last = time.Now()
	}
}

// idle reports whether nobody follows the log and none has for grace.
func (e *entry) idle(now time.Time, grace time.Duration) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.subs == 0 && now.Sub(e.last) >= grace
}

func (e *entry) finished() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.done
}
