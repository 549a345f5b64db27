package livelog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/store"
)

// followersEnv makes the test binary a crowd of browsers instead of running tests (see
// TestMain): the benchmark runs them in another process, so that what it measures of its own
// process is the daemon's side alone.
const followersEnv = "LIVELOG_BENCH_FOLLOWERS"

func TestMain(m *testing.M) {
	if spec := os.Getenv(followersEnv); spec != "" {
		os.Exit(followers(spec))
	}
	os.Exit(m.Run())
}

// followers opens spec's streams ("<n>|<url>|<url>…": n followers spread over the URLs), reads
// them until its stdin closes, and prints how many lines it received.
func followers(spec string) int {
	parts := strings.Split(spec, "|")
	n, _ := strconv.Atoi(parts[0])
	urls := parts[1:]
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var total int
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(u string) {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			got := 0
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: ") {
					got++
				}
			}
			mu.Lock()
			total += got
			mu.Unlock()
		}(urls[i%len(urls)])
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	cancel()
	wg.Wait()
	fmt.Println(total)
	return 0
}

// benchStore answers as the store of a daemon whose runs are all under way here.
type benchStore struct{}

func (benchStore) GetRun(context.Context, string) (store.Run, error) {
	return store.Run{Status: store.RunRunning}, nil
}
func (benchStore) ListJobs(context.Context, store.JobFilter) ([]store.Job, error) { return nil, nil }
func (benchStore) DaemonAddr(context.Context, string) (string, error) {
	return "", errors.New("one daemon")
}

// cpuTime is the CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func liveBytes() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// BenchmarkFollow100Streams20Jobs: 20 agents each print a line of 100 bytes every 50 ms (20
// lines a second, a busy agent) while 100 browsers, in another process, follow their logs, 5
// per job. It measures the daemon's side: its CPU time as a share of one core over the window,
// and the memory the followers add, against a baseline window of the same agents followed by
// nobody. Targets (issue 14): under 5% of a core and under 50 MB.
func BenchmarkFollow100Streams20Jobs(b *testing.B) {
	const jobs, browsers, window = 20, 100, 5 * time.Second
	h := New(Options{Store: benchStore{}, Self: "bench"})
	defer h.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /log/{job}", func(w http.ResponseWriter, r *http.Request) {
		h.ServeSSE(w, r, "run", r.PathValue("job"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var urls []string
	var entries []*entry
	for j := 0; j < jobs; j++ {
		job := fmt.Sprintf("agent[%d]", j)
		w := h.Open("run", job)
		e, _ := h.local("run", job)
		entries = append(entries, e)
		urls = append(urls, srv.URL+"/log/"+job)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.Close()
			t := time.NewTicker(50 * time.Millisecond)
			defer t.Stop()
			line := []byte(strings.Repeat("x", 99) + "\n")
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					_, _ = w.Write(line)
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	measure := func() (cpu float64) {
		c0, t0 := cpuTime(), time.Now()
		time.Sleep(window)
		return float64(cpuTime()-c0) / float64(time.Since(t0))
	}
	for i := 0; i < b.N; i++ {
		base := liveBytes()
		baseCPU := measure()

		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), followersEnv+"="+strconv.Itoa(browsers)+"|"+strings.Join(urls, "|"))
		in, _ := cmd.StdinPipe()
		var out strings.Builder
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for following(entries) < browsers {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d followers connected in 30 s", following(entries), browsers)
			}
			time.Sleep(10 * time.Millisecond)
		}
		cpu := measure()
		mem := liveBytes()
		_ = in.Close()
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
		got, _ := strconv.Atoi(strings.TrimSpace(out.String()))
		// Each follower gets its job's log from the first line (the baseline window's) and
		// then 20 lines a second: at least 90% of those.
		if want := int(float64(browsers) * 20 * 2 * window.Seconds() * 0.9); got < want {
			b.Fatalf("the followers received %d lines, want at least %d", got, want)
		}
		extra := float64(int64(mem)-int64(base)) / (1 << 20)
		b.ReportMetric(100*cpu, "%core")
		b.ReportMetric(100*baseCPU, "%core-unfollowed")
		b.ReportMetric(cpu/0.05, "x-of-5%-target")
		b.ReportMetric(extra, "MB-added")
		b.ReportMetric(extra/50, "x-of-50MB-target")
		b.ReportMetric(float64(got), "lines-delivered")
	}
}

func following(es []*entry) int {
	n := 0
	for _, e := range es {
		e.mu.Lock()
		n += e.subs
		e.mu.Unlock()
	}
	return n
}
