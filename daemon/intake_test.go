package daemon

import (
	"errors"
	"testing"

	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

const hookRoutine = `name: hooked
on:
  webhook: {secret: HOOK_KEY}
  dispatch: {inputs: {scope: {default: all, options: [all, docs]}}}
agents:
  a: {image: x, command: [x]}
`

func TestDispatchAndHookAreCheckedBeforeTheyAreQueued(t *testing.T) {
	st := storetest.SQLite(t).Open(t)
	repos, _ := NewRepos([]Repo{{Name: "acme/app", URL: "file:///x", DefaultBranch: "main"}})
	repos.Env = map[string]string{"HOOK_KEY": "k3y"}
	d, err := New(Options{Store: st, Pipeline: newFakePipeline(t, hookRoutine, quickRoutine), Repos: repos})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"alert":"disk full"}`)
	tests := []struct {
		name   string
		call   func() (*DispatchResult, error)
		status int // 0: accepted
	}{
		{"a dispatch with a valid input is queued", func() (*DispatchResult, error) {
			return d.Dispatch(t.Context(), "acme/app", "hooked", map[string]string{"scope": "docs"})
		}, 0},
		{"an input outside its options is 422", func() (*DispatchResult, error) {
			return d.Dispatch(t.Context(), "acme/app", "hooked", map[string]string{"scope": "all-of-it"})
		}, 422},
		{"an unknown input is 422", func() (*DispatchResult, error) {
			return d.Dispatch(t.Context(), "acme/app", "hooked", map[string]string{"nope": "1"})
		}, 422},
		{"an unknown routine is 404", func() (*DispatchResult, error) {
			return d.Dispatch(t.Context(), "acme/app", "ghost", nil)
		}, 404},
		{"a malformed repository is 400", func() (*DispatchResult, error) {
			return d.Dispatch(t.Context(), "acme", "hooked", nil)
		}, 400},
		{"a signed hook is queued", func() (*DispatchResult, error) {
			return d.Hook(t.Context(), "acme/app", "hooked", body, github.Sign([]byte("k3y"), body), "ext-1")
		}, 0},
		{"a hook signed with another key is 401", func() (*DispatchResult, error) {
			return d.Hook(t.Context(), "acme/app", "hooked", body, github.Sign([]byte("other"), body), "")
		}, 401},
		{"an unsigned hook is 401", func() (*DispatchResult, error) {
			return d.Hook(t.Context(), "acme/app", "hooked", body, "", "")
		}, 401},
		{"a hook for a routine without on.webhook is 404", func() (*DispatchResult, error) {
			return d.Hook(t.Context(), "acme/app", "quick", body, github.Sign([]byte("k3y"), body), "")
		}, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.call()
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				del, err := st.GetDelivery(t.Context(), res.DeliveryID)
				if err != nil || del.Status != store.DeliveryPending {
					t.Fatalf("delivery %s: %+v %v", res.DeliveryID, del, err)
				}
				if res.RunID != RunID(res.DeliveryID, res.Routine) {
					t.Errorf("run id %s is not derived from the delivery", res.RunID)
				}
				return
			}
			var re *RequestError
			if !errors.As(err, &re) || re.Status != tc.status {
				t.Fatalf("err = %v, want a RequestError with status %d", err, tc.status)
			}
		})
	}
	// The same external delivery id is queued once.
	first, _ := d.Hook(t.Context(), "acme/app", "hooked", body, github.Sign([]byte("k3y"), body), "ext-1")
	if first == nil || first.DeliveryID == "" {
		t.Fatal("second hook with the same delivery id was refused")
	}
	counts, _ := st.CountJobs(t.Context())
	if counts[store.JobAvailable] != 2 {
		t.Errorf("%d intake jobs queued, want 2 (one dispatch, one hook)", counts[store.JobAvailable])
	}
}
