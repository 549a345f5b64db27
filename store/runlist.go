package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RunCursor is a position in the runs list, which is ordered newest first by (CreatedAt, ID):
// the last row a page showed. A filter with Before set lists the rows after it, so a page of
// older runs costs one index range scan however deep it is, and runs created meanwhile do not
// shift it (keyset paging, unlike an offset).
type RunCursor struct {
	CreatedAt time.Time
	ID        string
}

// CursorOf is the position of run r in the list.
func CursorOf(r Run) RunCursor { return RunCursor{CreatedAt: r.CreatedAt, ID: r.ID} }

// IsZero says the cursor is unset: the list starts at the newest run.
func (c RunCursor) IsZero() bool { return c.ID == "" && c.CreatedAt.IsZero() }

// String encodes the cursor for a URL: "<unix microseconds>_<run id>"; ParseRunCursor reads it.
func (c RunCursor) String() string {
	if c.IsZero() {
		return ""
	}
	return strconv.FormatInt(micros(c.CreatedAt), 10) + "_" + c.ID
}

// ParseRunCursor reads a cursor made by RunCursor.String; "" is the zero cursor.
func ParseRunCursor(s string) (RunCursor, error) {
	if s == "" {
		return RunCursor{}, nil
	}
	num, id, ok := strings.Cut(s, "_")
	v, err := strconv.ParseInt(num, 10, 64)
	if !ok || err != nil || v < 0 || id == "" {
		return RunCursor{}, fmt.Errorf("run cursor %q: want <unix microseconds>_<run id>, as the previous page's next link gives", s)
	}
	return RunCursor{CreatedAt: fromMicros(v), ID: id}, nil
}

// runListQuery is ListRuns' query: a condition per filter that is set (as bind parameters),
// newest first, limited (100 when f.Limit <= 0). The order and the cursor condition match
// the runs_created_id index (created_at, id).
func runListQuery(f RunFilter) (string, []any) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	for _, eq := range [][2]string{{"repo", f.Repo}, {"routine", f.Routine}, {"status", f.Status},
		{"delivery_id", f.DeliveryID}, {"event_kind", f.Event}} {
		if eq[1] != "" {
			where = append(where, eq[0]+" = "+arg(eq[1]))
		}
	}
	if !f.FinishedAfter.IsZero() {
		// An unfinished run has finished_at 0, so it never matches.
		where = append(where, "finished_at >= "+arg(micros(f.FinishedAfter)))
	}
	if !f.Before.IsZero() {
		c := micros(f.Before.CreatedAt)
		where = append(where, "(created_at < "+arg(c)+" OR (created_at = "+arg(c)+" AND id < "+arg(f.Before.ID)+"))")
	}
	q := `SELECT ` + runColsNoPlan + ` FROM runs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	return q + ` ORDER BY created_at DESC, id DESC LIMIT ` + arg(limit), args
}
