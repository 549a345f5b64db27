package kube

import (
	"bufio"
	"context"
	"io"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// follower streams the agent container's log while it runs, and again from where it was when
// the connection drops: lines carry the kubelet's timestamps, so a resumed stream (which the
// API can only start at a whole second) skips what was written already.
type follower struct {
	cli  Client
	ns   string
	name string
	w    io.Writer

	once    sync.Once
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	ended   chan struct{} // closed when the agent ended: the next EOF is the last
	endOnce sync.Once

	last     time.Time // the newest line's timestamp
	lastSeen int       // lines written with exactly that timestamp
}

// maxLogLine bounds one line read from the API; a longer one is cut.
const maxLogLine = 1 << 20

func (f *follower) start() {
	f.once.Do(func() {
		f.ctx, f.cancel = context.WithCancel(context.Background())
		f.done, f.ended = make(chan struct{}), make(chan struct{})
		go f.loop()
	})
}

// finish waits up to grace for the log to be read to its end once the agent ended, then stops.
func (f *follower) finish(grace time.Duration) {
	if f.done == nil {
		return
	}
	f.endOnce.Do(func() { close(f.ended) })
	select {
	case <-f.done:
	case <-time.After(grace):
		f.cancel()
		<-f.done
	}
}

// stop ends the follower at once.
func (f *follower) stop() {
	if f.done == nil {
		return
	}
	f.cancel()
	<-f.done
}

func (f *follower) loop() {
	defer close(f.done)
	defer f.cancel()
	// Retries back off: a node whose kubelet does not answer must not turn every agent's
	// follower into a stream of failing requests at the API server.
	backoff := 500 * time.Millisecond
	for {
		// Once the agent ended, one more read takes what is left; then the log is complete.
		last := isClosed(f.ended)
		opts := &corev1.PodLogOptions{Container: agentContainer, Follow: true, Timestamps: true}
		if !f.last.IsZero() {
			opts.SinceTime = &metav1.Time{Time: f.last}
		}
		stream, err := f.cli.CoreV1().Pods(f.ns).GetLogs(f.name, opts).Stream(f.ctx)
		if err == nil {
			f.copy(stream)
			stream.Close()
			backoff = 500 * time.Millisecond
		} else {
			backoff = min(2*backoff, 10*time.Second)
		}
		if last {
			return
		}
		select {
		case <-f.ctx.Done():
			return
		case <-f.ended:
		case <-time.After(backoff): // dropped: resume
		}
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (f *follower) copy(r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	var skipping int // lines at exactly f.last still to skip in a resumed stream
	resumed := !f.last.IsZero()
	if resumed {
		skipping = f.lastSeen
	}
	for {
		line, err := readLine(br)
		if line != "" {
			ts, text, ok := splitTimestamp(line)
			switch {
			case !ok:
				_, _ = io.WriteString(f.w, line)
			case resumed && ts.Before(f.last):
			case resumed && ts.Equal(f.last) && skipping > 0:
				skipping--
			default:
				if ts.Equal(f.last) {
					f.lastSeen++
				} else {
					f.last, f.lastSeen = ts, 1
				}
				_, _ = io.WriteString(f.w, text)
			}
		}
		if err != nil {
			return
		}
	}
}

// readLine reads one line with its newline, at most maxLogLine bytes of it.
func readLine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		chunk, err := br.ReadSlice('\n')
		if b.Len() < maxLogLine {
			b.Write(chunk[:min(len(chunk), maxLogLine-b.Len())])
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return b.String(), err
	}
}

// splitTimestamp splits "2026-12-06T20:00:00.123456789Z text" into its parts.
func splitTimestamp(line string) (time.Time, string, bool) {
	stamp, text, ok := strings.Cut(line, " ")
	if !ok {
		return time.Time{}, "", false
	}
	ts, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		return time.Time{}, "", false
	}
	return ts, text, true
}
