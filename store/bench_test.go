package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The benchmarks run a fixed burst per b.N iteration rather than one delivery per op, so that
// `make bench` (-benchtime=1x) still measures thousands of deliveries: burst deliveries from
// `handlers` goroutines, as concurrent webhook handlers would send them.
const (
	benchBurst    = 4000
	benchHandlers = 64
)

// benchBodies: a typical webhook, and a large push payload.
var benchBodies = []struct {
	name string
	size int
}{{"body=4KiB", 4 << 10}, {"body=25KiB", 25 << 10}}

func benchBody(size int) []byte {
	return []byte(`{"ref":"refs/heads/main","pad":"` + strings.Repeat("x", size) + `"}`)
}

// burst records n deliveries from handlers goroutines and returns the rate and the p50/p99
// latency of one RecordDelivery (the time a webhook waits before its 2xx).
func burst(b *testing.B, record func(ctx context.Context, d Delivery) (bool, error), prefix string, n, size int) (perSec float64, p50, p99 time.Duration) {
	cpu0 := cpuTime()
	defer func() { lastCPUPerDelivery = (cpuTime() - cpu0) / time.Duration(n) }()
	b.Helper()
	body := benchBody(size)
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range benchHandlers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				t0 := time.Now()
				fresh, err := record(context.Background(), Delivery{ID: fmt.Sprintf("%s-%d", prefix, i), Event: "push", Body: body})
				lat[i] = time.Since(t0)
				if err != nil || !fresh {
					failed.Store(fmt.Sprintf("delivery %d: fresh=%v err=%v", i, fresh, err))
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failed.Load(); f != nil {
		b.Fatal(f)
	}
	slices.Sort(lat)
	return float64(n) / elapsed.Seconds(), lat[n/2], lat[n*99/100]
}

// lastCPUPerDelivery is the process CPU time (user+system) per delivery of the last burst: on a
// shared, loaded machine it is steadier than the wall-clock rate.
var lastCPUPerDelivery time.Duration

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func report(b *testing.B, rate float64, p50, p99 time.Duration, baseRate float64) {
	b.ReportMetric(float64(lastCPUPerDelivery.Microseconds()), "cpu-us/delivery")
	b.ReportMetric(rate, "deliveries/s")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(baseRate, "baseline-deliveries/s")
	b.ReportMetric(rate/baseRate, "x-baseline")
}

// BenchmarkRecordDeliverySQLite measures acknowledged-and-persisted deliveries (WAL,
// synchronous=FULL, group commit) against a baseline in the same run: the same store committing
// each delivery in its own transaction.
func BenchmarkRecordDeliverySQLite(b *testing.B) {
	ctx := context.Background()
	st, err := Open(ctx, filepath.Join(b.TempDir(), "runner.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqlStore)
	ungrouped := &sqlStore{dialect: s.dialect, w: s.w, r: s.r, now: s.now}
	for _, bb := range benchBodies {
		b.Run(bb.name, func(b *testing.B) {
			for i := range b.N {
				p := fmt.Sprintf("%s-%d-", bb.name, i)
				base, _, _ := burst(b, ungrouped.RecordDelivery, p+"base", benchBurst/4, bb.size)
				rate, p50, p99 := burst(b, s.RecordDelivery, p+"grp", benchBurst, bb.size)
				report(b, rate, p50, p99, base)
			}
		})
	}
}

// BenchmarkRecordDeliveryPostgres measures the same on Postgres, against a baseline of a plain
// one-row INSERT of the same body per delivery (no dedupe, no job) from as many handlers.
func BenchmarkRecordDeliveryPostgres(b *testing.B) {
	dsn := os.Getenv("AGENTRUNNER_TEST_POSTGRES")
	if dsn == "" {
		b.Fatal("AGENTRUNNER_TEST_POSTGRES is not set; see store/storetest.PostgresDSN for how to start a server")
	}
	ctx := context.Background()
	schema := fmt.Sprintf("storebench_%d", time.Now().UnixNano())
	admin, err := Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	adb := admin.(*sqlStore).w
	if _, err := adb.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		b.Fatal(err)
	}
	defer func() { _, _ = adb.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE") }()
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	st, err := Open(ctx, dsn+sep+"search_path="+schema)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqlStore)
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE plain (id TEXT PRIMARY KEY, body BYTEA NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	plain := func(ctx context.Context, d Delivery) (bool, error) {
		_, err := s.w.ExecContext(ctx, `INSERT INTO plain (id, body) VALUES ($1, $2)`, d.ID, d.Body)
		return err == nil, err
	}
	for _, bb := range benchBodies {
		b.Run(bb.name, func(b *testing.B) {
			for i := range b.N {
				p := fmt.Sprintf("%s-%d-", bb.name, i)
				base, _, _ := burst(b, plain, p+"base", benchBurst/4, bb.size)
				rate, p50, p99 := burst(b, s.RecordDelivery, p+"d", benchBurst, bb.size)
				report(b, rate, p50, p99, base)
			}
		})
	}
}
