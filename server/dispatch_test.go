package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// inputsDispatcher records the inputs of the dispatches that reach it.
type inputsDispatcher struct {
	countingDispatcher
	got []map[string]string
}

func (d *inputsDispatcher) Dispatch(_ context.Context, repo, routine string, in map[string]string) (*daemon.DispatchResult, error) {
	d.got = append(d.got, in)
	return &daemon.DispatchResult{RunID: "r-new", Repo: repo, Routine: routine}, nil
}

// "prompt" in a dispatch is the input named prompt: one line starts "use a workflow" work.
func TestDispatchTakesAPrompt(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	tok, err := st.CreateToken(t.Context(), store.Token{Name: "ci", Scope: store.ScopeDispatch})
	if err != nil {
		t.Fatal(err)
	}
	d := &inputsDispatcher{}
	mux := http.NewServeMux()
	(&server.API{Store: st, Dispatcher: d}).Register(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	post := func(body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+"/api/v1/repos/acme/app/routines/migrate/dispatch", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post(`{"prompt": "migrate every service off the old client; use a workflow", "inputs": {"scope": "all"}}`); code != http.StatusAccepted {
		t.Fatalf("dispatch with a prompt: %d %s", code, body)
	}
	if len(d.got) != 1 || d.got[0]["prompt"] != "migrate every service off the old client; use a workflow" || d.got[0]["scope"] != "all" {
		t.Errorf("the dispatcher got %v", d.got)
	}
	if code, body := post(`{"prompt": "a", "inputs": {"prompt": "b"}}`); code != http.StatusBadRequest || !strings.Contains(body, "send one") {
		t.Errorf("prompt twice: %d %s", code, body)
	}
}

// A run under way lists its jobs as they start, an orchestrator's workflow's among them, with
// their agents and states.
func TestRunUnderWayListsItsJobs(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	ctx := t.Context()
	run, _, err := st.CreateRun(ctx, store.Run{Repo: "acme/app", Routine: "migrate"})
	if err != nil {
		t.Fatal(err)
	}
	run.Status = store.RunRunning
	if err := st.UpdateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	for job, state := range map[string]string{"lead": store.RunJobFinished, "lead/edit[services/api]#2": store.RunJobRunning} {
		if err := st.SetRunJobState(ctx, run.ID, job, state); err != nil {
			t.Fatal(err)
		}
	}
	tok, _ := st.CreateToken(ctx, store.Token{Name: "r", Scope: store.ScopeRead})
	mux := http.NewServeMux()
	(&server.API{Store: st, Dispatcher: &inputsDispatcher{}}).Register(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	req, _ := http.NewRequest(http.MethodGet, hs.URL+"/api/v1/runs/"+run.ID, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v server.RunView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	got := map[string]server.JobView{}
	for _, j := range v.Jobs {
		got[j.ID] = j
	}
	if j := got["lead/edit[services/api]#2"]; j.Agent != "lead/edit" || j.State != store.RunJobRunning {
		t.Errorf("workflow job: %+v (all %+v)", j, v.Jobs)
	}
	if j := got["lead"]; j.Agent != "lead" || j.State != store.RunJobFinished {
		t.Errorf("orchestrator job: %+v", j)
	}
}

// GET /api/v1/spend lists a day's metered spend by repository and routine; a bad day is a 400.
func TestSpendPerRoutinePerDay(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	ctx := t.Context()
	for _, sp := range []store.Spend{{Day: "2026-12-06", Repo: "acme/app", Routine: "migrate", USD: 1.5}, {Day: "2026-12-06", Repo: "acme/app", Routine: "audit", USD: 0.25}, {Day: "2026-12-05", Repo: "acme/app", Routine: "audit", USD: 9}} {
		if err := st.AddSpend(ctx, sp.Day, sp.Repo, sp.Routine, sp.USD); err != nil {
			t.Fatal(err)
		}
	}
	tok, _ := st.CreateToken(ctx, store.Token{Name: "r", Scope: store.ScopeRead})
	mux := http.NewServeMux()
	(&server.API{Store: st, Dispatcher: &inputsDispatcher{}}).Register(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	get := func(q string) (int, server.SpendView) {
		req, _ := http.NewRequest(http.MethodGet, hs.URL+"/api/v1/spend"+q, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v server.SpendView
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	code, v := get("?day=2026-12-06")
	if code != 200 || v.TotalUSD != 1.75 || len(v.Routines) != 2 || v.Routines[0].Routine != "audit" || v.Routines[1].USD != 1.5 {
		t.Errorf("spend: %d %+v", code, v)
	}
	if code, _ := get("?day=yesterday"); code != http.StatusBadRequest {
		t.Errorf("a bad day: %d", code)
	}
}
