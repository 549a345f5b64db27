package runner

import (
	"math"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

func TestARefusedModelCallEndsTheJobBudgetExceeded(t *testing.T) {
	for _, tc := range []struct {
		before, want result.Outcome
		refused      int
	}{
		{result.Failed, result.BudgetExceeded, 1},
		{result.Success, result.BudgetExceeded, 2}, // a CLI that exits 0 with its work half done
		{result.TimedOut, result.TimedOut, 1},
		{result.Cancelled, result.Cancelled, 1},
		{result.Failed, result.Failed, 0},
	} {
		e := &Exit{Outcome: tc.before, Metered: &result.Metered{USD: 0.04, Refused: tc.refused, Budget: 0.05, RunUSD: 0.0512}}
		budgetOutcome(e)
		if e.Outcome != tc.want {
			t.Errorf("%s with %d refused: %s, want %s", tc.before, tc.refused, e.Outcome, tc.want)
		}
		if tc.want == result.BudgetExceeded && !strings.Contains(e.Error, "budget of $0.05 for model calls was spent ($0.0512)") {
			t.Errorf("error %q", e.Error)
		}
	}
}

// An agent stopped by the budget is budget_exceeded, which `if:` can test and failure() counts;
// the report shows the metered spend beside the agents' own account, and the cap.
func TestBudgetExceededIsAResultIfCanTest(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.sb.exit = func(in *plan.Instance, e *Exit) {
		switch in.Agent {
		case "work":
			e.Metered = &result.Metered{USD: 0.0512, Calls: 4, Refused: 1, Budget: 0.05, RunUSD: 0.0512}
			budgetOutcome(e)
		case "other":
			e.Metered = &result.Metered{USD: 0.001, Calls: 1, Budget: 0.05, RunUSD: 0.0522}
		}
	}
	p := routine(t, `
budget: {run: 0.05}
agents:
  work: {command: ["/testagent", "exit", "1"]}
  other: {command: ["/testagent", "print", "x"]}
  tell:
    needs: work
    if: "${{ needs.work.result == 'budget_exceeded' && failure() }}"
    command: ["/testagent", "output", "told=yes"]
`, "")
	if p.Budget != 0.05 {
		t.Fatalf("plan budget %v", p.Budget)
	}
	res := h.run(t, t.Context(), p, nil)
	if a := agentOf(t, res, "work"); a.Result != plan.ResultBudgetExceeded {
		t.Errorf("work: %s", a.Result)
	}
	if j := jobOf(t, res, "tell"); j.Outputs["told"] != "yes" {
		t.Errorf("tell did not run on budget_exceeded: %s", j.Outcome)
	}
	if res.Conclusion == result.ConclusionSuccess {
		t.Error("a run stopped by its budget concluded success")
	}
	for _, want := range []string{"### Spend", "| work | $0.0512 | 4 |", "| other | $0.0010 | 1 |", "of a $0.05 budget", "work stopped with budget_exceeded"} {
		if !strings.Contains(res.Report, want) {
			t.Errorf("report lacks %q:\n%s", want, res.Report)
		}
	}
}

func TestSpendCap(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		budget, spent, left, limit float64
		capped                     bool
	}{
		{0, 1, inf, 0, false},    // no budget at all
		{5, 1, inf, 5, true},     // the run's own
		{5, 1, 2, 3, true},       // the day leaves less than the run's budget
		{5, 1, 10, 5, true},      // the run's budget is the lower
		{0, 1.5, 0, 1.5, true},   // the day is spent: nothing more
		{0, 1, 0.25, 1.25, true}, // only a daily budget
	} {
		limit, capped := spendCap(tc.budget, tc.spent, tc.left)
		if limit != tc.limit || capped != tc.capped {
			t.Errorf("spendCap(%v, %v, %v) = %v, %v; want %v, %v", tc.budget, tc.spent, tc.left, limit, capped, tc.limit, tc.capped)
		}
	}
}
