package storetest

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
)

// testModelSpend covers the daily model spend: amounts add up per day, repository and
// routine, concurrently and from two stores on one database (two daemons).
func testModelSpend(t *testing.T, db DB) {
	a, b := db.Open(t), db.Open(t)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			check(t, s.AddSpend(ctx, "2026-12-06", "o/r", "migrate", 0.25))
		}()
	}
	wg.Wait()
	check(t, a.AddSpend(ctx, "2026-12-06", "o/r", "audit", 1))
	check(t, a.AddSpend(ctx, "2026-12-05", "o/r", "migrate", 7))
	check(t, a.AddSpend(ctx, "2026-12-06", "o/other", "migrate", 3))
	list, err := b.DaySpends(ctx, "2026-12-06")
	check(t, err)
	var got []string
	for _, sp := range list {
		got = append(got, fmt.Sprintf("%s %s %.2f", sp.Repo, sp.Routine, sp.USD))
	}
	if strings.Join(got, "; ") != "o/other migrate 3.00; o/r audit 1.00; o/r migrate 5.00" {
		t.Errorf("DaySpends = %q", got)
	}
	for _, tc := range []struct {
		routine string
		want    float64
	}{{"migrate", 5}, {"audit", 1}, {"", 6}, {"nothing", 0}} {
		got, err := b.DaySpend(ctx, "2026-12-06", "o/r", tc.routine)
		check(t, err)
		if math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("DaySpend(o/r, %q) = %v, want %v", tc.routine, got, tc.want)
		}
	}
}
