package overview_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/overview"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// routinesFS is a real .agents directory: a nightly routine on two schedules (one in Paris),
// a dispatchable routine with a prompt, and one on pushes and pull requests.
var routinesFS = fstest.MapFS{
	".agents/nightly.yaml": {Data: []byte(`description: Nightly audit
on:
  schedule:
    - cron: "0 3 * * *"
    - cron: "30 9 * * 1-5"
      timezone: Europe/Paris
agents:
  a: {image: x, command: [x]}
`)},
	".agents/ask.yaml": {Data: []byte(`description: Ask an agent <b>anything</b>
on:
  dispatch:
    inputs:
      area:
        description: Which part
        required: true
        options: [api, web]
      prompt:
        description: What to do
        required: true
      limit:
        default: "50"
agents:
  a: {image: x, command: [x]}
`)},
	".agents/check.yaml": {Data: []byte(`on:
  push: {branches: [main], paths: ["src/**"]}
  pull_request: {types: [opened]}
agents:
  a: {image: x, command: [x]}
`)},
}

type fakeConfigs struct {
	cfg  *config.Config
	err  error
	seen []string
}

func (f *fakeConfigs) RepoNames() []string { return []string{"acme/app", "acme/broken"} }

func (f *fakeConfigs) DefaultConfig(_ context.Context, repo string) (*config.Config, string, string, error) {
	f.seen = append(f.seen, repo)
	if repo == "acme/broken" {
		return nil, "", "", errors.New("ask.yaml:3: unknown key")
	}
	return f.cfg, "0123abcd", "main", f.err
}

func TestRoutinesReadModel(t *testing.T) {
	cfg, err := config.LoadFS(routinesFS, ".agents")
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.SQLite(t).Open(t)
	ctx := t.Context()
	// Seven runs of ask, one of nightly, one of another repository's ask.
	for i := range 7 {
		if _, _, err := st.CreateRun(ctx, store.Run{ID: fmt.Sprintf("ask-%d", i), Repo: "acme/app", Routine: "ask", EventKind: "dispatch", SHA: "0123abcd"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct creation times: newest first is well defined
	}
	for id, run := range map[string]store.Run{"n1": {Repo: "acme/app", Routine: "nightly", EventKind: "schedule"}, "other": {Repo: "acme/web", Routine: "ask"}} {
		run.ID = id
		if _, _, err := st.CreateRun(ctx, run); err != nil {
			t.Fatal(err)
		}
	}
	src := &fakeConfigs{cfg: cfg}
	// Friday 2026-12-04 08:00 UTC: 09:00 in Paris.
	now := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)

	if _, err := overview.Routines(ctx, src, st, "acme/nope", now, 5); !errors.Is(err, overview.ErrUnknownRepo) {
		t.Errorf("unknown repository: %v, want ErrUnknownRepo", err)
	}
	if len(src.seen) != 0 {
		t.Errorf("an unknown repository's config was read: %v", src.seen)
	}
	rr, err := overview.Routines(ctx, src, st, "acme/app", now, overview.RecentRuns)
	if err != nil {
		t.Fatal(err)
	}
	if rr.Branch != "main" || rr.SHA != "0123abcd" || len(rr.Routines) != 3 {
		t.Fatalf("repo routines = %+v", rr)
	}
	var names []string
	for _, r := range rr.Routines {
		names = append(names, r.Name)
	}
	if diff := cmp.Diff([]string{"ask", "check", "nightly"}, names); diff != "" {
		t.Errorf("routines not sorted by name (-want +got):\n%s", diff)
	}

	nightly := rr.Routine("nightly")
	utc := func(d, h, m int) time.Time { return time.Date(2026, 12, d, h, m, 0, 0, time.UTC) }
	// Paris is UTC+1 in December: 09:30 there is 08:30 UTC, on weekdays only (Mon 7th next).
	want := []time.Time{utc(4, 8, 30), utc(5, 3, 0), utc(6, 3, 0)}
	if diff := cmp.Diff(want, nightly.NextTicks); diff != "" {
		t.Errorf("nightly next ticks (-want +got):\n%s", diff)
	}
	if got := nightly.Triggers[1]; got.Kind != "schedule" || got.Detail != "30 9 * * 1-5 (Europe/Paris)" ||
		!cmp.Equal(got.Next, []time.Time{utc(4, 8, 30), utc(7, 8, 30), utc(8, 8, 30)}) {
		t.Errorf("Paris schedule trigger = %+v", got)
	}
	if nightly.Dispatchable || nightly.TakesPrompt || len(nightly.RecentRuns) != 1 || nightly.RecentRuns[0].ID != "n1" {
		t.Errorf("nightly = %+v", nightly)
	}

	ask := rr.Routine("ask")
	if !ask.Dispatchable || !ask.TakesPrompt || ask.Prompt == nil || ask.Prompt.Description != "What to do" || !ask.Prompt.Required {
		t.Errorf("ask: dispatchable %v, takes prompt %v, prompt %+v", ask.Dispatchable, ask.TakesPrompt, ask.Prompt)
	}
	wantInputs := []overview.Input{
		{Name: "area", Description: "Which part", Required: true, Options: []string{"api", "web"}},
		{Name: "limit", Default: "50"},
	}
	if diff := cmp.Diff(wantInputs, ask.Inputs); diff != "" {
		t.Errorf("ask inputs, prompt left out (-want +got):\n%s", diff)
	}
	if ask.Description != "Ask an agent <b>anything</b>" {
		t.Errorf("description = %q (the read model keeps text as written; renderers escape)", ask.Description)
	}
	var recent []string
	for _, r := range ask.RecentRuns {
		recent = append(recent, r.ID)
	}
	if diff := cmp.Diff([]string{"ask-6", "ask-5", "ask-4", "ask-3", "ask-2"}, recent); diff != "" {
		t.Errorf("ask's recent runs, newest 5 of this repository (-want +got):\n%s", diff)
	}
	if len(ask.NextTicks) != 0 || !cmp.Equal(ask.Triggers, []overview.Trigger{{Kind: "dispatch", Detail: "inputs area, prompt, limit"}}) {
		t.Errorf("ask triggers %+v, ticks %v", ask.Triggers, ask.NextTicks)
	}

	check := rr.Routine("check")
	if diff := cmp.Diff([]overview.Trigger{
		{Kind: "push", Detail: "branches main; paths src/**"},
		{Kind: "pull_request", Detail: "types opened"},
	}, check.Triggers); diff != "" || check.Dispatchable || check.TakesPrompt {
		t.Errorf("check triggers (-want +got):\n%s", diff)
	}

	all, err := overview.AllRoutines(ctx, src, st, now, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Repo != "acme/app" || len(all[0].Routines) != 3 || len(all[0].Routine("ask").RecentRuns) != 1 {
		t.Fatalf("all routines = %+v", all)
	}
	if b := all[1]; b.Repo != "acme/broken" || b.Error != "ask.yaml:3: unknown key" || len(b.Routines) != 0 {
		t.Errorf("a repository whose config cannot be read = %+v, want its error", b)
	}
}
