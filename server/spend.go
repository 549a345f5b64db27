package server

import (
	"net/http"
	"time"
)

// SpendView is GET /api/v1/spend: one UTC day's metered model spend by repository and routine.
type SpendView struct {
	Day      string         `json:"day"`
	TotalUSD float64        `json:"total_usd"`
	Routines []RoutineSpend `json:"routines"`
}

// RoutineSpend is one routine's spend on the day.
type RoutineSpend struct {
	Repo    string  `json:"repo"`
	Routine string  `json:"routine"`
	USD     float64 `json:"usd"`
}

// spend serves GET /api/v1/spend?day=2006-01-02 (default: today, UTC).
func (a *API) spend(w http.ResponseWriter, r *http.Request) {
	day := r.URL.Query().Get("day")
	if day == "" {
		day = time.Now().UTC().Format(time.DateOnly)
	}
	if _, err := time.Parse(time.DateOnly, day); err != nil {
		apiError(w, http.StatusBadRequest, "day "+day+": want a date like 2026-12-06")
		return
	}
	list, err := a.Store.DaySpends(r.Context(), day)
	if err != nil {
		a.fail(w, "read the model spend", err)
		return
	}
	v := SpendView{Day: day, Routines: []RoutineSpend{}}
	for _, sp := range list {
		v.Routines = append(v.Routines, RoutineSpend{Repo: sp.Repo, Routine: sp.Routine, USD: sp.USD})
		v.TotalUSD += sp.USD
	}
	writeJSON(w, http.StatusOK, v)
}
