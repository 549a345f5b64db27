package daemon

import (
	"context"
	"math"
	"time"

	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/plan"
)

// SpendStore keeps the daily model spend (the store).
type SpendStore interface {
	AddSpend(ctx context.Context, day, repo, routine string, usd float64) error
	DaySpend(ctx context.Context, day, repo, routine string) (float64, error)
}

// DailyBudgets makes runs' ledgers for the daily budgets: a routine's (`budget.day`) and the
// runner's per repository (runner.yaml's budget.repo-day), counted in the store so every
// daemon sharing it holds them together.
type DailyBudgets struct {
	Store SpendStore
	// RepoDay caps what one repository's runs spend in a UTC day (0: no cap).
	RepoDay float64
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Ledger returns run's ledger, or nil when no daily budget applies to it.
func (b *DailyBudgets) Ledger(repo string, run *plan.Run) runner.SpendLedger {
	if b == nil || b.Store == nil || (run.DayBudget <= 0 && b.RepoDay <= 0) {
		return nil
	}
	return &dayLedger{b: b, repo: repo, routine: run.Routine, routineDay: run.DayBudget}
}

type dayLedger struct {
	b          *DailyBudgets
	repo       string
	routine    string
	routineDay float64
}

// Record implements runner.SpendLedger: the spend counts on the day it is recorded, and what
// is left is the smaller of what the routine's and the repository's daily budgets leave.
func (l *dayLedger) Record(ctx context.Context, usd float64) (float64, error) {
	now := time.Now
	if l.b.Now != nil {
		now = l.b.Now
	}
	day := now().UTC().Format(time.DateOnly)
	if usd > 0 {
		if err := l.b.Store.AddSpend(ctx, day, l.repo, l.routine, usd); err != nil {
			return 0, err
		}
	}
	left := math.Inf(1)
	for _, c := range []struct {
		routine string
		limit   float64
	}{{l.routine, l.routineDay}, {"", l.b.RepoDay}} {
		if c.limit <= 0 {
			continue
		}
		spent, err := l.b.Store.DaySpend(ctx, day, l.repo, c.routine)
		if err != nil {
			return 0, err
		}
		left = min(left, c.limit-spent)
	}
	return max(left, 0), nil
}
