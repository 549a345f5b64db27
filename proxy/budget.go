package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// KindBudget is the Attempt kind of a model call refused because the run's budget is spent.
const KindBudget = "BUDGET"

// Spend is what one job's model calls through the key endpoints cost, as metered from the
// APIs' responses.
type Spend struct {
	USD          float64 `json:"usd"`
	Calls        int     `json:"calls"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	// Unpriced counts calls of models the price table does not know (priced at its dearest).
	Unpriced int `json:"unpriced,omitempty"`
	// Refused counts calls refused because the budget was spent.
	Refused int `json:"refused,omitempty"`
}

// Spend returns job's spend and the run's in all.
func (s *Server) Spend(jobID string) (Spend, float64) {
	s.spendMu.Lock()
	defer s.spendMu.Unlock()
	var sp Spend
	if j := s.spends[jobID]; j != nil {
		sp = *j
	}
	return sp, s.spent
}

func (s *Server) jobSpend(jobID string) *Spend {
	j := s.spends[jobID]
	if j == nil {
		j = &Spend{}
		s.spends[jobID] = j
	}
	return j
}

// charge adds one metered call to job's spend and the run's.
func (s *Server) charge(jobID string, u Usage) {
	usd, known := s.cfg.Prices.Cost(u)
	s.spendMu.Lock()
	defer s.spendMu.Unlock()
	j := s.jobSpend(jobID)
	j.USD += usd
	j.Calls++
	j.InputTokens += u.InputTokens + u.CacheReadTokens + u.CacheWriteTokens
	j.OutputTokens += u.OutputTokens
	if !known {
		j.Unpriced++
	}
	s.spent += usd
	s.log.Info("model call", "job", jobID, "model", u.Model, "input_tokens", u.InputTokens, "output_tokens", u.OutputTokens,
		"usd", usd, "run_usd", s.spent, "priced", known)
}

// overBudget says why the next call is refused ("" while the budget lasts), and counts the
// refusal against job.
func (s *Server) overBudget(jobID string) string {
	s.spendMu.Lock()
	defer s.spendMu.Unlock()
	if !s.capped || s.spent < s.budget {
		return ""
	}
	s.jobSpend(jobID).Refused++
	if s.cfg.Budget > 0 && s.budget == s.cfg.Budget {
		return fmt.Sprintf("the run's budget of $%.2f for model calls is spent ($%.4f)", s.cfg.Budget, s.spent)
	}
	return fmt.Sprintf("a daily budget for model calls is spent (this run may spend $%.4f, and has spent $%.4f)", s.budget, s.spent)
}

// SetBudget caps the run's spend at usd (capped), or lifts the cap: the runner moves it as
// daily budgets, shared with other runs, are spent.
func (s *Server) SetBudget(usd float64, capped bool) {
	s.spendMu.Lock()
	defer s.spendMu.Unlock()
	s.capped, s.budget = capped, usd
}

// refuseBudget answers a model call as the APIs answer an error, so the agent's CLI shows why
// it stops: with a status they do not retry.
func refuseBudget(w http.ResponseWriter, reason string) {
	body, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]string{
		"type": "budget_exceeded", "message": "agentrunner: " + reason + "; the job ends as budget_exceeded"}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusPaymentRequired)
	_, _ = w.Write(body)
}
