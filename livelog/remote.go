package livelog

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// InternalPattern is the route on which a daemon streams the logs of the jobs it runs to the
// other daemons of its fleet. Requests are signed with the fleet's shared key (the store
// holds it), so the route may sit on the public listener.
const InternalPattern = "GET /internal/v1/runs/{id}/jobs/{job}/log"

// signatureHeader carries "<unix expiry>.<hex HMAC-SHA256>" over the request's path.
const signatureHeader = "X-Agentrunner-Signature"

// signatureTTL bounds how long a signed request may be replayed.
const signatureTTL = 5 * time.Minute

// Register adds the internal route to mux.
func (h *Hub) Register(mux *http.ServeMux) {
	mux.HandleFunc(InternalPattern, h.serveInternal)
}

func (h *Hub) serveInternal(w http.ResponseWriter, r *http.Request) {
	runID, job := r.PathValue("id"), r.PathValue("job")
	if !h.verify(r.Header.Get(signatureHeader), internalPath(runID, job), time.Now()) {
		http.Error(w, "unsigned or badly signed request", http.StatusUnauthorized)
		return
	}
	h.serve(w, r, runID, job, false)
}

func internalPath(runID, job string) string {
	return "/internal/v1/runs/" + url.PathEscape(runID) + "/jobs/" + url.PathEscape(job) + "/log"
}

func (h *Hub) mac(path string, expiry int64) string {
	m := hmac.New(sha256.New, h.o.Key)
	fmt.Fprintf(m, "agentrunner live log\n%s\n%d", path, expiry)
	return hex.EncodeToString(m.Sum(nil))
}

func (h *Hub) sign(path string, now time.Time) string {
	exp := now.Add(signatureTTL).Unix()
	return strconv.FormatInt(exp, 10) + "." + h.mac(path, exp)
}

func (h *Hub) verify(sig, path string, now time.Time) bool {
	if len(h.o.Key) == 0 {
		return false
	}
	e, mac, ok := strings.Cut(sig, ".")
	if !ok {
		return false
	}
	exp, err := strconv.ParseInt(e, 10, 64)
	if err != nil || now.Unix() > exp || exp > now.Add(signatureTTL+time.Minute).Unix() {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(h.mac(path, exp)))
}

// mirror returns the local copy of job's log on daemon owner, started if need be, with one
// follower counted for the caller. One stream from owner feeds it however many follow here.
func (h *Hub) mirror(ctx context.Context, runID, job, owner string) (*entry, error) {
	k := key(runID, job)
	h.mu.Lock()
	if e := h.mirrors[k]; e != nil {
		e.follow(1)
		h.mu.Unlock()
		return e, nil
	}
	h.mu.Unlock()
	addr, err := h.o.Store.DaemonAddr(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("the job runs on daemon %s, whose address is unknown: %w", owner, err)
	}
	if len(h.o.Key) == 0 {
		return nil, errors.New("the job runs on another daemon and this one has no key to ask it")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.mirrors[k]; e != nil {
		e.follow(1)
		return e, nil
	}
	e := newEntry(h.o.RingSize)
	e.follow(1)
	h.mirrors[k] = e
	go h.pull(e, k, strings.TrimSuffix(addr, "/")+internalPath(runID, job), owner)
	return e, nil
}

// pull feeds mirror e from the daemon at u until the log ends, the hub closes, or nobody here
// has followed it for the grace period; a broken stream resumes where it stopped.
func (h *Hub) pull(e *entry, k, u, owner string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				cancel()
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				h.mu.Lock()
				if e.idle(now, h.o.Grace) {
					delete(h.mirrors, k)
					cancel()
				}
				h.mu.Unlock()
			}
		}
	}()
	defer func() {
		h.mu.Lock()
		if h.mirrors[k] == e {
			delete(h.mirrors, k)
		}
		h.mu.Unlock()
		e.finish()
	}()
	var lastID string
	for failures := 0; ctx.Err() == nil; {
		over, err := h.pullOnce(ctx, e, u, &lastID)
		if over || ctx.Err() != nil {
			return
		}
		if err != nil {
			if failures++; failures >= 10 {
				fmt.Fprintf(e, "[agentrunner: lost the live log from daemon %s: %v]\n", owner, err)
				return
			}
			h.o.Logger.Debug("follow a log on another daemon", "daemon", owner, "err", err)
		} else {
			failures = 0
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(failures) * 500 * time.Millisecond):
		}
	}
}

// pullOnce reads one stream of u into e and reports whether the log is over.
func (h *Hub) pullOnce(ctx context.Context, e *entry, u string, lastID *string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return true, err
	}
	path := req.URL.EscapedPath()
	req.Header.Set(signatureHeader, h.sign(path, time.Now()))
	req.Header.Set("Accept", "text/event-stream")
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	resp, err := h.o.Client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotFound:
		return true, nil // the run is over (or gone): its stored log has everything
	case resp.StatusCode != http.StatusOK:
		return false, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), 4*maxLine+64)
	// An event counts when its blank line comes: one cut off halfway is asked for again.
	var event, id, data string
	var hasData bool
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event == "end" {
				return true, nil
			}
			if event == "" && hasData {
				_, _ = e.Write([]byte(data + "\n"))
			}
			if id != "" {
				*lastID = id
			}
			event, id, data, hasData = "", "", "", false
		case strings.HasPrefix(line, "data: "):
			data, hasData = line[len("data: "):], true
		case strings.HasPrefix(line, "id: "):
			id = line[len("id: "):]
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	return false, errors.New("the stream ended before the log did")
}
