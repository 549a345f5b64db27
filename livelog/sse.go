package livelog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentrunner/agentrunner/internal/safefile"
	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/store"
)

// maxLine bounds one event: an agent that never prints a line break is still followed, in
// pieces of this size.
const maxLine = 8 << 10

// keepAlive is how often a quiet stream sends a comment, so proxies keep the connection and a
// follower whose browser went away is noticed.
const keepAlive = 15 * time.Second

// recheck is how often a follower waiting for its job to start asks the store where the run is.
const recheck = time.Second

// ServeSSE streams job's log of run runID as Server-Sent Events: one "message" event per line
// (id: the log's byte offset past the line, which a reconnecting EventSource sends back as
// Last-Event-ID to resume), and an "end" event when the job has ended. The stream starts at the
// job's first line. A job of a run held by another daemon is followed through that daemon.
// 204 No Content: the run is over, there is nothing live (the stored log has it all).
func (h *Hub) ServeSSE(w http.ResponseWriter, r *http.Request, runID, job string) {
	h.serve(w, r, runID, job, true)
}

// serve follows a log; remote says whether a job on another daemon is followed through it
// (the internal route never does, so two daemons cannot send a request round in circles).
func (h *Hub) serve(w http.ResponseWriter, r *http.Request, runID, job string, remote bool) {
	if !validJob(job) {
		http.Error(w, "no such job", http.StatusNotFound)
		return
	}
	from, _ := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64)
	ctx := r.Context()
	var e *entry
	mirrored := false
	for started := false; e == nil; {
		local, added := h.local(runID, job)
		if local != nil {
			e = local
			break
		}
		run, err := h.o.Store.GetRun(ctx, runID)
		if errors.Is(err, store.ErrNotFound) {
			http.Error(w, "no run "+runID, http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, "read the run: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if run.Status == store.RunCompleted {
			if started {
				end(w)
				return
			}
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if owner := h.holder(ctx, runID); remote && owner != "" && owner != h.o.Self {
			if e, err = h.mirror(ctx, runID, job, owner); err != nil {
				if !started {
					http.Error(w, err.Error(), http.StatusBadGateway)
					return
				}
				h.o.Logger.Warn("follow a log on another daemon", "run_id", runID, "job", job, "daemon", owner, "err", err)
				e = nil
			}
			if e != nil {
				mirrored = true // mirror counted the follower
				break
			}
		}
		if !started {
			// The job has not started here yet: the stream opens and waits for it.
			started = true
			head(w)
			_, _ = io.WriteString(w, ": waiting for the job to start\n\n")
			flush(w)
		}
		select {
		case <-ctx.Done():
			return
		case <-h.stop:
			return
		case <-added:
		case <-time.After(recheck):
		}
	}
	if !mirrored {
		e.follow(1)
	}
	defer e.follow(-1)
	head(w) // a stream that waited for its job has sent its headers already; head says so
	h.stream(ctx, w, e, runID, job, from)
}

// holder is the daemon that holds the run's lease, "" when none does (queued, or over).
func (h *Hub) holder(ctx context.Context, runID string) string {
	jobs, err := h.o.Store.ListJobs(ctx, store.JobFilter{RunID: runID, State: store.JobLeased})
	if err != nil {
		return ""
	}
	for _, j := range jobs {
		if j.LeaseOwner != "" {
			return j.LeaseOwner
		}
	}
	return ""
}

func head(w http.ResponseWriter) {
	hd := w.Header()
	if hd.Get("Content-Type") == "text/event-stream" {
		return
	}
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no") // a reverse proxy must pass events on as they come
	w.WriteHeader(http.StatusOK)
	flush(w) // the follower knows the stream is open before the first line
}

func end(w http.ResponseWriter) {
	_, _ = io.WriteString(w, "event: end\ndata: \n\n")
	flush(w)
}

func flush(w http.ResponseWriter) {
	_ = http.NewResponseController(w).Flush()
}

// stream sends e's lines from offset from until the log ends or the follower leaves.
func (h *Hub) stream(ctx context.Context, w http.ResponseWriter, e *entry, runID, job string, from int64) {
	bw := bufio.NewWriterSize(w, 16<<10)
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	var last time.Time
	const chunk = 64 << 10
	buf := make([]byte, 0, 4<<10) // grows to what the follower's reads need
	for {
		v := e.read(from, chunk, buf)
		if cap(v.data) > cap(buf) {
			buf = v.data[:0]
		}
		data, at := v.data, max(from, v.start)
		if from < v.start {
			// The ring no longer holds what comes next: the log file has it, up to where the
			// runner cut the middle of a very long log.
			want := min(v.start-from, chunk)
			b := h.fromFile(runID, job, from, want)
			switch {
			case int64(len(b)) == v.start-from:
				data, at = append(b, data...), from
			case int64(len(b)) == want:
				data, at = b, from
			default:
				lines(bw, b, from, true)
				fmt.Fprintf(bw, "data: [… %d bytes of this log are not shown live; the stored log keeps its start and end]\n\n", v.start-from-int64(len(b)))
			}
		}
		used := lines(bw, data, at, v.done && at+int64(len(data)) == v.end)
		from = at + used
		if v.done && from >= v.end {
			_, _ = io.WriteString(bw, "event: end\ndata: \n\n")
			_ = bw.Flush()
			flush(w)
			return
		}
		if bw.Buffered() > 0 {
			if bw.Flush() != nil {
				return
			}
			flush(w)
			last = time.Now()
		}
		if used > 0 && from < v.end {
			continue // more is there already
		}
		select {
		case <-ctx.Done():
			return
		case <-h.stop:
			return
		case <-v.changed:
			// Lines that come in a burst go out in one write.
			if wait := h.o.Batch - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		case <-tick.C:
			if _, err := io.WriteString(bw, ": keep-alive\n\n"); err != nil || bw.Flush() != nil {
				return
			}
			flush(w)
		}
	}
}

// fromFile reads n bytes from offset from of the job's log file: the part of the log the ring
// has dropped. The file is what the agent's job wrote, so it is opened beneath the run's
// directory without following links, and read bounded.
func (h *Hub) fromFile(runID, job string, from, n int64) []byte {
	if h.o.RunsDir == "" || !filepath.IsLocal(runID) || strings.ContainsAny(runID, `/\`) {
		return nil
	}
	f, err := safefile.Open(filepath.Join(h.o.RunsDir, runID), "jobs/"+runner.JobDirName(job)+"/log.txt")
	if err != nil {
		return nil
	}
	defer f.Close()
	b := make([]byte, n)
	k, _ := f.ReadAt(b, from)
	return b[:k]
}

// lines writes one event per complete line of data, which starts at offset off, and returns
// how many bytes it consumed: a last line without its line break waits for the rest unless it
// is final or too long to hold.
func lines(w io.Writer, data []byte, off int64, final bool) int64 {
	var used int64
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var line []byte
		switch {
		case i >= 0 && i <= maxLine:
			line, data = data[:i], data[i+1:]
			used += int64(i + 1)
		case len(data) > maxLine:
			line, data = data[:maxLine], data[maxLine:]
			used += maxLine
		case final:
			line, used, data = data, used+int64(len(data)), nil
		default:
			return used
		}
		ev := append(append(append(append(make([]byte, 0, len(line)+32), "id: "...), strconv.AppendInt(nil, off+used, 10)...), "\ndata: "...), clean(line)...)
		_, _ = w.Write(append(ev, "\n\n"...))
	}
	return used
}

// clean makes a line safe to send as one event's data: a carriage return overwrites the line
// as on a terminal (progress bars), and invalid UTF-8 becomes U+FFFD. What is left may hold any
// other character; the page shows it as text.
func clean(line []byte) []byte {
	if i := bytes.LastIndexByte(line, '\r'); i >= 0 {
		if i == len(line)-1 {
			line = line[:i]
			if j := bytes.LastIndexByte(line, '\r'); j >= 0 {
				line = line[j+1:]
			}
		} else {
			line = line[i+1:]
		}
	}
	if !utf8.Valid(line) {
		line = bytes.ToValidUTF8(line, []byte("\uFFFD"))
	}
	return line
}

// validJob refuses names no job has (a job id is printable text; a fan-out key may hold "/",
// which only ever reaches the file system through runner.JobDirName).
func validJob(job string) bool {
	if job == "" || len(job) > 512 || !utf8.ValidString(job) {
		return false
	}
	for _, c := range job {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
