package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/store"
)

// testRunListing covers the runs list's trigger and finish-time filters and its keyset paging,
// ties on the creation time included (the id breaks them).
func testRunListing(t *testing.T, db DB) {
	s := db.Open(t)
	ctx := ctxT(t)
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	// Seven runs: r0 oldest; r3, r4 and r5 created at the same instant.
	created := []time.Duration{0, time.Minute, 2 * time.Minute, 3 * time.Minute, 3 * time.Minute, 3 * time.Minute, 4 * time.Minute}
	events := []string{"push", "schedule", "push", "schedule", "push", "dispatch", "schedule"}
	for i, c := range created {
		_, _, err := s.CreateRun(ctx, store.Run{ID: fmt.Sprintf("r%d", i), Repo: "o/r", Routine: "x", EventKind: events[i], CreatedAt: base.Add(c)})
		check(t, err)
	}
	// r0 finishes last of all (a long run), r2 early, r6 in between; the rest never finish.
	finish := map[string]time.Time{"r0": base.Add(10 * time.Hour), "r2": base.Add(3 * time.Hour), "r6": base.Add(5 * time.Hour)}
	for id, at := range finish {
		check(t, s.UpdateRun(ctx, store.Run{ID: id, Status: store.RunCompleted, Conclusion: "success", StartedAt: at.Add(-time.Minute), FinishedAt: at}))
	}
	ids := func(f store.RunFilter) []string {
		var out []string
		for _, r := range must(s.ListRuns(ctx, f)) {
			out = append(out, r.ID)
		}
		return out
	}
	tests := []struct {
		name string
		f    store.RunFilter
		want []string
	}{
		{"newest first, ties by id", store.RunFilter{}, []string{"r6", "r5", "r4", "r3", "r2", "r1", "r0"}},
		{"by trigger", store.RunFilter{Event: "schedule"}, []string{"r6", "r3", "r1"}},
		{"finished since, created long before", store.RunFilter{FinishedAfter: base.Add(5 * time.Hour)}, []string{"r6", "r0"}},
		{"finished at or after the instant itself", store.RunFilter{FinishedAfter: base.Add(3 * time.Hour)}, []string{"r6", "r2", "r0"}},
		{"finished since, nothing yet", store.RunFilter{FinishedAfter: base.Add(11 * time.Hour)}, nil},
		{"trigger and finish time together", store.RunFilter{Event: "push", FinishedAfter: base.Add(time.Hour)}, []string{"r2", "r0"}},
		{"after a cursor inside a tie", store.RunFilter{Before: store.RunCursor{CreatedAt: base.Add(3 * time.Minute), ID: "r4"}}, []string{"r3", "r2", "r1", "r0"}},
		{"after a cursor and by trigger", store.RunFilter{Event: "schedule", Before: store.RunCursor{CreatedAt: base.Add(3 * time.Minute), ID: "r3"}}, []string{"r1"}},
		{"after the oldest", store.RunFilter{Before: store.RunCursor{CreatedAt: base, ID: "r0"}}, nil},
	}
	for _, tc := range tests {
		if got := ids(tc.f); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: ids = %v, want %v", tc.name, got, tc.want)
		}
	}

	// Page through two at a time with each page's last row as the next cursor, while a new
	// run arrives: every run is seen exactly once, and the new one does not shift the pages.
	var seen []string
	var cur store.RunCursor
	for page := 0; ; page++ {
		runs := must(s.ListRuns(ctx, store.RunFilter{Limit: 2, Before: cur}))
		if len(runs) == 0 {
			break
		}
		for _, r := range runs {
			seen = append(seen, r.ID)
		}
		cur = store.CursorOf(runs[len(runs)-1])
		// The cursor survives its URL form.
		cur = must(store.ParseRunCursor(cur.String()))
		if page == 0 {
			_, _, err := s.CreateRun(ctx, store.Run{ID: "new", Repo: "o/r", Routine: "x", CreatedAt: base.Add(time.Hour)})
			check(t, err)
		}
		if page > 10 {
			t.Fatal("paging does not end")
		}
	}
	if fmt.Sprint(seen) != "[r6 r5 r4 r3 r2 r1 r0]" {
		t.Errorf("pages of two = %v", seen)
	}
	for _, bad := range []string{"x", "12", "_r1", "-5_r1", "12_"} {
		if _, err := store.ParseRunCursor(bad); err == nil {
			t.Errorf("ParseRunCursor(%q) accepted", bad)
		}
	}
}
