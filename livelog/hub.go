// Package livelog follows jobs' logs live for the control room and the API: each job's log
// is written once into a bounded ring as the agent prints, and any number of people follow it
// as Server-Sent Events, on this daemon or, through the daemon running the job, on any other
// daemon of the fleet.
package livelog

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/agentrunner/agentrunner/store"
)

// Store is what the hub reads to find where a job runs.
type Store interface {
	GetRun(ctx context.Context, id string) (store.Run, error)
	ListJobs(ctx context.Context, f store.JobFilter) ([]store.Job, error)
	DaemonAddr(ctx context.Context, owner string) (string, error)
}

// Options configure a Hub.
type Options struct {
	Store Store
	// Self is this daemon's lease owner name: a run leased by another owner is followed
	// through that daemon's internal address.
	Self string
	// RunsDir holds <run>/jobs/<job dir>/log.txt: a follower that starts late reads the part of
	// the log the ring no longer holds from there.
	RunsDir string
	// Key signs the requests daemons make to each other for a log (store.Key(LiveLogKeyName)).
	Key []byte
	// Client makes those requests (a default client when nil).
	Client *http.Client
	Logger *slog.Logger
	// RingSize bounds the bytes of a job's log held in memory (256 KiB when 0).
	RingSize int
	// Batch is the shortest time between two writes to one follower (250 ms when 0): lines
	// printed in a burst go out together, a delay nobody reading a log notices.
	Batch time.Duration
	// Grace is how long a finished log stays for followers that come late (1 min when 0).
	Grace time.Duration
}

// Hub holds the logs of the jobs running on this daemon, and the mirrors of logs followed
// from other daemons.
type Hub struct {
	o Options

	mu   sync.Mutex
	logs map[string]*entry // local jobs by key(run, job)
	// mirrors are logs of jobs on other daemons, each fed by one stream from that daemon
	// however many people here follow it.
	mirrors map[string]*entry
	// added is closed (and replaced) when a local log is opened: followers waiting for a job
	// to start wait on it.
	added chan struct{}
	stop  chan struct{}
	once  sync.Once
}

// LiveLogKeyName names the store key that signs daemon-to-daemon log requests.
const LiveLogKeyName = "live-log"

// New makes a Hub; Close stops its mirrors.
func New(o Options) *Hub {
	if o.RingSize <= 0 {
		o.RingSize = 256 << 10
	}
	if o.Batch <= 0 {
		o.Batch = 250 * time.Millisecond
	}
	if o.Grace <= 0 {
		o.Grace = time.Minute
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{o: o, logs: map[string]*entry{}, mirrors: map[string]*entry{}, added: make(chan struct{}), stop: make(chan struct{})}
}

// Close ends the hub's mirrors; local logs end when their writers close.
func (h *Hub) Close() error {
	h.once.Do(func() { close(h.stop) })
	return nil
}

func key(runID, job string) string { return runID + "\x00" + job }

// Open starts job's live log for run runID; everything written to the result is followed
// live until Close. Writes never block and never fail.
func (h *Hub) Open(runID, job string) io.WriteCloser {
	e := newEntry(h.o.RingSize)
	h.mu.Lock()
	h.sweepLocked(time.Now())
	h.logs[key(runID, job)] = e
	close(h.added)
	h.added = make(chan struct{})
	h.mu.Unlock()
	return &writer{e: e}
}

type writer struct{ e *entry }

func (w *writer) Write(p []byte) (int, error) { return w.e.Write(p) }
func (w *writer) Close() error                { w.e.finish(); return nil }

// local returns the log of a job running (or lately run) here, or nil, and a channel closed
// when another log is opened.
func (h *Hub) local(runID, job string) (*entry, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logs[key(runID, job)], h.added
}

// sweepLocked forgets the finished logs nobody has followed for the grace period.
func (h *Hub) sweepLocked(now time.Time) {
	for k, e := range h.logs {
		if e.finished() && e.idle(now, h.o.Grace) {
			delete(h.logs, k)
		}
	}
}

// Len reports how many job logs the hub holds (local and mirrored); tests use it to see that
// nothing is left behind.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sweepLocked(time.Now())
	return len(h.logs) + len(h.mirrors)
}
