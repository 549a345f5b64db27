package server_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/overview"
	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// GET /api/v1/review needs a token with scope read and answers the overview's review.
func TestReviewAPI(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	now := time.Now().UTC()
	for id, finished := range map[string]time.Time{"recent": now.Add(-2 * time.Hour), "older": now.Add(-30 * time.Hour)} {
		if _, _, err := st.CreateRun(t.Context(), store.Run{ID: id, Repo: "o/r", Routine: "x", EventKind: "schedule"}); err != nil {
			t.Fatal(err)
		}
		if err := st.UpdateRun(t.Context(), store.Run{ID: id, Status: store.RunCompleted, Conclusion: "success", FinishedAt: finished}); err != nil {
			t.Fatal(err)
		}
	}
	get := readAPI(t, st, t.TempDir())
	for since, want := range map[string]int{"": 1, "3h": 1, "2d": 2, "1h": 0} {
		code, body, _ := get("/api/v1/review?since=" + since)
		var rv overview.Review
		if code != http.StatusOK || json.Unmarshal([]byte(body), &rv) != nil || len(rv.Items) != want {
			t.Errorf("review since %q: %d %s, want %d items", since, code, body, want)
		}
	}
	if code, body, _ := get("/api/v1/review?since=-1h"); code != http.StatusBadRequest || !strings.Contains(body, "positive duration") {
		t.Errorf("review since -1h: %d %s", code, body)
	}
	mux := http.NewServeMux()
	(&server.API{Store: st}).Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/review", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("review without a token: %d", rec.Code)
	}
}
