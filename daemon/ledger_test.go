package daemon

import (
	"math"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/runner/plan"
)

// Two daemons on one database share the daily budgets: what a run on one records, a run on the
// other has not left to spend; a repository's budget holds over its routines together.
func TestDailyBudgetsHoldAcrossDaemons(t *testing.T) {
	for _, tc := range databases {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.db(t)
			now := func() time.Time { return time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC) }
			one := &DailyBudgets{Store: db.Open(t), RepoDay: 2, Now: now}
			two := &DailyBudgets{Store: db.Open(t), RepoDay: 2, Now: now}
			if l := one.Ledger("acme/app", &plan.Run{Routine: "free"}); l == nil {
				t.Fatal("a repository budget applies to a routine without one")
			}
			if l := (&DailyBudgets{Store: db.Open(t)}).Ledger("acme/app", &plan.Run{Routine: "free"}); l != nil {
				t.Fatal("a ledger without any daily budget")
			}
			ctx := t.Context()
			a := one.Ledger("acme/app", &plan.Run{Routine: "migrate", DayBudget: 1})
			b := two.Ledger("acme/app", &plan.Run{Routine: "migrate", DayBudget: 1})
			c := two.Ledger("acme/app", &plan.Run{Routine: "audit"})
			check := func(name string, got float64, err error, want float64) {
				t.Helper()
				if err != nil || math.Abs(got-want) > 1e-9 {
					t.Errorf("%s: left $%v (%v), want $%v", name, got, err, want)
				}
			}
			left, err := a.Record(ctx, 0.6)
			check("daemon one's run after $0.60", left, err, 0.4)
			left, err = b.Record(ctx, 0.3)
			check("daemon two's run of the same routine after $0.30", left, err, 0.1)
			left, err = c.Record(ctx, 0.9)
			check("another routine, within the repository's $2", left, err, 0.2)
			left, err = a.Record(ctx, 0)
			check("the first run again: the repository's budget is now the lower", left, err, 0.1)
			left, err = b.Record(ctx, 0.5)
			check("past the routine's budget", left, err, 0)
			// A new UTC day starts afresh.
			next := &DailyBudgets{Store: db.Open(t), RepoDay: 2, Now: func() time.Time { return now().Add(2 * time.Hour) }}
			left, err = next.Ledger("acme/app", &plan.Run{Routine: "migrate", DayBudget: 1}).Record(ctx, 0)
			check("the next day", left, err, 1)
		})
	}
}
