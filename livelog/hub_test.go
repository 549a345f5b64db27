package livelog

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// event is one Server-Sent Event as a browser's EventSource sees it.
type event struct{ name, id, data string }

// follow opens the stream at u (with Last-Event-ID last, unless "") and sends its events on the
// returned channel, closed when the stream ends.
func follow(t *testing.T, u, last string) (<-chan event, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan event, 1000)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.data != "" || ev.name != "" {
					ch <- ev
				}
				ev = event{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return ch, resp
}

func next(t *testing.T, ch <-chan event) event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event in 10 s")
	}
	return event{}
}

// fleet is a store with one run, leased by daemon "b".
type fleet struct {
	st    store.Store
	runID string
}

func newFleet(t *testing.T) fleet {
	t.Helper()
	ctx := context.Background()
	st := storetest.SQLite(t).Open(t)
	run, _, err := st.CreateRun(ctx, store.Run{Repo: "acme/app", Routine: "review", SHA: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Enqueue(ctx, store.Job{Kind: "run", RunID: run.ID}); err != nil {
		t.Fatal(err)
	}
	if jobs, err := st.Lease(ctx, "b", []string{"run"}, 1, time.Hour); err != nil || len(jobs) != 1 {
		t.Fatalf("lease: %v %v", jobs, err)
	}
	return fleet{st: st, runID: run.ID}
}

func serveHub(t *testing.T, h *Hub) *httptest.Server {
	mux := http.NewServeMux()
	h.Register(mux)
	mux.HandleFunc("GET /ui/runs/{id}/jobs/{job}/log", func(w http.ResponseWriter, r *http.Request) {
		h.ServeSSE(w, r, r.PathValue("id"), r.PathValue("job"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = h.Close() })
	return srv
}

func logURL(srv *httptest.Server, runID, job string) string {
	return srv.URL + "/ui/runs/" + url.PathEscape(runID) + "/jobs/" + url.PathEscape(job) + "/log"
}

func TestFollowerSeesEachLineAsItIsPrinted(t *testing.T) {
	f := newFleet(t)
	h := New(Options{Store: f.st, Self: "b", Batch: time.Millisecond})
	srv := serveHub(t, h)
	job := "review[services/api]#2"
	w := h.Open(f.runID, job)
	ch, resp := follow(t, logURL(srv, f.runID, job), "")
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	var lastID string
	for i := 0; i < 3; i++ {
		fmt.Fprintf(w, "line %d\n", i)
		// Each line arrives before the next is printed: the stream is live, not at the end.
		ev := next(t, ch)
		if want := fmt.Sprintf("line %d", i); ev.data != want || ev.name != "" {
			t.Fatalf("event %+v, want data %q", ev, want)
		}
		lastID = ev.id
	}
	if lastID != "21" {
		t.Fatalf("id after three lines = %q, want the byte offset 21", lastID)
	}
	// A reconnecting EventSource sends the last id back and gets only what came after.
	fmt.Fprintf(w, "line 3\npartial")
	again, _ := follow(t, logURL(srv, f.runID, job), lastID)
	if ev := next(t, again); ev.data != "line 3" {
		t.Fatalf("resumed stream began with %+v, want line 3", ev)
	}
	if ev := next(t, ch); ev.data != "line 3" {
		t.Fatalf("event %+v, want line 3", ev)
	}
	_ = w.Close()
	for _, c := range []<-chan event{ch, again} {
		for _, want := range []event{{data: "partial"}, {name: "end"}} {
			ev := next(t, c)
			if ev.data != want.data || ev.name != want.name {
				t.Fatalf("event %+v, want %+v", ev, want)
			}
		}
	}
}

func TestFollowerWaitsForTheJobToStart(t *testing.T) {
	f := newFleet(t)
	h := New(Options{Store: f.st, Self: "b", Batch: time.Millisecond})
	srv := serveHub(t, h)
	ch, resp := follow(t, logURL(srv, f.runID, "late"), "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s, want the stream to open and wait", resp.Status)
	}
	time.Sleep(100 * time.Millisecond)
	w := h.Open(f.runID, "late")
	fmt.Fprintln(w, "started")
	if ev := next(t, ch); ev.data != "started" {
		t.Fatalf("event %+v", ev)
	}
	_ = w.Close()
	if ev := next(t, ch); ev.name != "end" {
		t.Fatalf("event %+v, want end", ev)
	}
}

func TestNothingLiveForAFinishedOrUnknownRun(t *testing.T) {
	f := newFleet(t)
	ctx := context.Background()
	run, _ := f.st.GetRun(ctx, f.runID)
	run.Status = store.RunCompleted
	if err := f.st.UpdateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	h := New(Options{Store: f.st, Self: "b"})
	srv := serveHub(t, h)
	for u, want := range map[string]int{
		logURL(srv, f.runID, "review"):      http.StatusNoContent,
		logURL(srv, "no-such-run", "x"):     http.StatusNotFound,
		logURL(srv, f.runID, "bad\x1bname"): http.StatusNotFound,
	} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", u, resp.Status, want)
		}
	}
}

// A follower who comes after the ring has wrapped reads the start from the log file, and a
// log file the agent replaced with a link is not followed.
func TestLateFollowerReadsTheStartFromTheFile(t *testing.T) {
	f := newFleet(t)
	runs := t.TempDir()
	dir := filepath.Join(runs, f.runID, "jobs", runner.JobDirName("long"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "log.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	h := New(Options{Store: f.st, Self: "b", RunsDir: runs, RingSize: 100, Batch: time.Millisecond})
	srv := serveHub(t, h)
	w := h.Open(f.runID, "long")
	// The job writes to the file and the hub alike, as the daemon's job sandbox does.
	var want []string
	for i := 0; i < 50; i++ {
		line := fmt.Sprintf("line %02d", i)
		want = append(want, line)
		fmt.Fprintln(logFile, line)
		fmt.Fprintln(w, line)
	}
	_ = w.Close()
	ch, _ := follow(t, logURL(srv, f.runID, "long"), "")
	for _, line := range want {
		if ev := next(t, ch); ev.data != line {
			t.Fatalf("event %+v, want %q", ev, line)
		}
	}
	if ev := next(t, ch); ev.name != "end" {
		t.Fatalf("event %+v, want end", ev)
	}

	// Now the file is a symlink to a host file: the follower is told a part is not shown.
	secret := filepath.Join(t.TempDir(), "host-secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("SECRET\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "log.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "log.txt")); err != nil {
		t.Fatal(err)
	}
	ch, _ = follow(t, logURL(srv, f.runID, "long"), "")
	first := next(t, ch)
	if !strings.Contains(first.data, "not shown live") {
		t.Fatalf("first event %+v, want the note that the start is not shown", first)
	}
	for ev := next(t, ch); ev.name != "end"; ev = next(t, ch) {
		if strings.Contains(ev.data, "SECRET") {
			t.Fatalf("the follower read the host file through the agent's link: %+v", ev)
		}
	}
}

// Daemon A's followers of a job on daemon B all share one stream from B, signed with the
// fleet's key; an unsigned request to B's internal route is refused.
func TestFollowAJobOnAnotherDaemon(t *testing.T) {
	f := newFleet(t)
	ctx := context.Background()
	key, err := f.st.Key(ctx, LiveLogKeyName)
	if err != nil {
		t.Fatal(err)
	}
	b := New(Options{Store: f.st, Self: "b", Key: key, Batch: time.Millisecond})
	var internal atomic.Int32
	bmux := http.NewServeMux()
	b.Register(bmux)
	bsrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/internal/") {
			internal.Add(1)
		}
		bmux.ServeHTTP(w, r)
	}))
	t.Cleanup(bsrv.Close)
	t.Cleanup(func() { _ = b.Close() })
	if err := f.st.SetDaemonAddr(ctx, "b", bsrv.URL); err != nil {
		t.Fatal(err)
	}
	a := New(Options{Store: f.st, Self: "a", Key: key, Batch: time.Millisecond, Grace: time.Second})
	asrv := serveHub(t, a)

	w := b.Open(f.runID, "review")
	fmt.Fprintln(w, "before anyone followed")
	var followers []<-chan event
	for i := 0; i < 3; i++ {
		ch, _ := follow(t, logURL(asrv, f.runID, "review"), "")
		followers = append(followers, ch)
		if ev := next(t, ch); ev.data != "before anyone followed" {
			t.Fatalf("follower %d: %+v", i, ev)
		}
	}
	fmt.Fprintln(w, "while they follow")
	for i, ch := range followers {
		if ev := next(t, ch); ev.data != "while they follow" {
			t.Fatalf("follower %d: %+v", i, ev)
		}
	}
	if n := internal.Load(); n != 1 {
		t.Errorf("%d streams from daemon B for 3 followers on A, want 1", n)
	}
	_ = w.Close()
	for i, ch := range followers {
		if ev := next(t, ch); ev.name != "end" {
			t.Fatalf("follower %d: %+v, want end", i, ev)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.Len() != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := a.Len(); n != 0 {
		t.Errorf("daemon A still holds %d mirrored logs after the job ended", n)
	}

	// B's internal route wants the fleet's signature.
	path := internalPath(f.runID, "review")
	for name, sig := range map[string]string{
		"none":    "",
		"forged":  fmt.Sprintf("%d.%s", time.Now().Add(time.Minute).Unix(), strings.Repeat("0", 64)),
		"expired": New(Options{Key: key}).sign(path, time.Now().Add(-time.Hour)),
		"other":   New(Options{Key: []byte("another fleet")}).sign(path, time.Now()),
		"reused":  b.sign(internalPath(f.runID, "other-job"), time.Now()),
	} {
		req, _ := http.NewRequest(http.MethodGet, bsrv.URL+path, nil)
		req.Header.Set(signatureHeader, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s signature: %s, want 401", name, resp.Status)
		}
	}
}
