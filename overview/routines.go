package overview

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/store"
)

// PromptInput is the dispatch input that is a routine's free-text prompt. The rule is by name:
// a routine takes a prompt when its on.dispatch declares an input called "prompt", which its
// agents use as ${{ inputs.prompt }}. Renderers show it as a multi-line text area rather than
// a one-line field; the API passes it like any other input.
const PromptInput = "prompt"

// NextTicks is how many upcoming schedule ticks a routine lists.
const NextTicks = 3

// RecentRuns is how many of a routine's newest runs the routines view lists.
const RecentRuns = 5

// ErrUnknownRepo: the daemon does not serve the repository.
var ErrUnknownRepo = errors.New("this runner does not serve that repository")

// ConfigSource knows the repositories a daemon serves and their routines at the default
// branch; *daemon.Daemon implements it from what it already read (it does not fetch anew for
// every call).
type ConfigSource interface {
	// RepoNames lists the repositories served (owner/name), sorted.
	RepoNames() []string
	// DefaultConfig returns repo's routines at its default branch's tip, that tip and the
	// branch's name.
	DefaultConfig(ctx context.Context, repo string) (cfg *config.Config, sha, branch string, err error)
}

// RunLister lists runs newest first (store.Store.ListRuns).
type RunLister interface {
	ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error)
}

// RepoRoutines is one repository's routines at its default branch.
type RepoRoutines struct {
	Repo   string `json:"repo"`
	Branch string `json:"branch,omitempty"`
	SHA    string `json:"sha,omitempty"`
	// Error says why the routines could not be read (Routines is then empty).
	Error    string    `json:"error,omitempty"`
	Routines []Routine `json:"routines"`
}

// Routine is one routine as the routines view shows it. Description, input descriptions,
// defaults and options come from the repository: renderers must escape them.
type Routine struct {
	Name        string    `json:"name"`
	Description string    `json:"description,omitempty"`
	Triggers    []Trigger `json:"triggers"`
	// NextTicks are the soonest NextTicks ticks of all its schedules, in UTC.
	NextTicks []time.Time `json:"next_ticks,omitempty"`
	// Dispatchable: it has on.dispatch, so the API, the CLI and the Run form can start it.
	Dispatchable bool `json:"dispatchable"`
	// Inputs are its dispatch inputs in file order, the prompt (see PromptInput) left out.
	Inputs []Input `json:"inputs,omitempty"`
	// TakesPrompt: it declares the dispatch input PromptInput, described by Prompt.
	TakesPrompt bool       `json:"takes_prompt"`
	Prompt      *Input     `json:"prompt,omitempty"`
	RecentRuns  []RunBrief `json:"recent_runs"`
}

// Trigger is one entry of a routine's on: block.
type Trigger struct {
	// Kind is the event: push, pull_request, issue_comment, schedule, dispatch, webhook.
	Kind string `json:"kind"`
	// Detail summarizes its filters for people ("branches main; paths src/**").
	Detail string `json:"detail,omitempty"`
	// Cron and Timezone are a schedule's; Next its next ticks in UTC.
	Cron     string      `json:"cron,omitempty"`
	Timezone string      `json:"timezone,omitempty"`
	Next     []time.Time `json:"next,omitempty"`
	// Error says why a schedule has no ticks (an unknown time zone).
	Error string `json:"error,omitempty"`
}

// Input is one dispatch input.
type Input struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Required    bool     `json:"required,omitempty"`
	Default     string   `json:"default,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// RunBrief is one recent run of a routine.
type RunBrief struct {
	ID         string    `json:"id"`
	Status     string    `json:"status"`
	Conclusion string    `json:"conclusion,omitempty"`
	Trigger    string    `json:"trigger"`
	SHA        string    `json:"sha"`
	CreatedAt  time.Time `json:"created_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Routine returns the routine called name, or nil.
func (r *RepoRoutines) Routine(name string) *Routine {
	for i := range r.Routines {
		if r.Routines[i].Name == name {
			return &r.Routines[i]
		}
	}
	return nil
}

// Routines reads repo's routines at its default branch (ErrUnknownRepo when it is not served),
// with their next ticks after now and their newest runs (recent of them; 0: none listed). A
// config that cannot be read is no error: the answer's Error says why.
func Routines(ctx context.Context, src ConfigSource, runs RunLister, repo string, now time.Time, recent int) (*RepoRoutines, error) {
	if !slices.Contains(src.RepoNames(), repo) {
		return nil, fmt.Errorf("%s: %w", repo, ErrUnknownRepo)
	}
	return routinesOf(ctx, src, runs, repo, now, recent)
}

// AllRoutines reads every served repository's routines (see Routines), a few at a time.
func AllRoutines(ctx context.Context, src ConfigSource, runs RunLister, now time.Time, recent int) ([]*RepoRoutines, error) {
	names := src.RepoNames()
	out := make([]*RepoRoutines, len(names))
	errs := make([]error, len(names))
	// A repository not read since the daemon started is fetched now: do a few at once, not
	// one after the other, and not all of a large fleet at once.
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = routinesOf(ctx, src, runs, name, now, recent)
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func routinesOf(ctx context.Context, src ConfigSource, runs RunLister, repo string, now time.Time, recent int) (*RepoRoutines, error) {
	rr := &RepoRoutines{Repo: repo, Routines: []Routine{}}
	cfg, sha, branch, err := src.DefaultConfig(ctx, repo)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rr.Error = err.Error()
		return rr, nil
	}
	rr.SHA, rr.Branch = sha, branch
	for _, c := range cfg.Routines {
		r := routineOf(c, now)
		if recent > 0 {
			list, err := runs.ListRuns(ctx, store.RunFilter{Repo: repo, Routine: c.Name, Limit: recent})
			if err != nil {
				return nil, fmt.Errorf("runs of %s %s: %w", repo, c.Name, err)
			}
			for _, run := range list {
				r.RecentRuns = append(r.RecentRuns, RunBrief{ID: run.ID, Status: run.Status, Conclusion: run.Conclusion,
					Trigger: run.EventKind, SHA: run.SHA, CreatedAt: run.CreatedAt, FinishedAt: run.FinishedAt})
			}
		}
		rr.Routines = append(rr.Routines, r)
	}
	sort.Slice(rr.Routines, func(a, b int) bool { return rr.Routines[a].Name < rr.Routines[b].Name })
	return rr, nil
}

func routineOf(c *config.Routine, now time.Time) Routine {
	r := Routine{Name: c.Name, Description: c.Description, Triggers: []Trigger{}, RecentRuns: []RunBrief{}}
	on := c.On
	if p := on.Push; p != nil {
		r.Triggers = append(r.Triggers, Trigger{Kind: "push", Detail: details(
			"branches", p.Branches, "branches-ignore", p.BranchesIgnore, "tags", p.Tags, "tags-ignore", p.TagsIgnore,
			"paths", p.Paths, "paths-ignore", p.PathsIgnore)})
	}
	if p := on.PullRequest; p != nil {
		d := details("types", p.Types, "branches", p.Branches, "branches-ignore", p.BranchesIgnore,
			"paths", p.Paths, "paths-ignore", p.PathsIgnore)
		if p.ForkSecrets {
			d = strings.TrimPrefix(d+"; fork-secrets", "; ")
		}
		r.Triggers = append(r.Triggers, Trigger{Kind: "pull_request", Detail: d})
	}
	if p := on.IssueComment; p != nil {
		r.Triggers = append(r.Triggers, Trigger{Kind: "issue_comment", Detail: strings.TrimPrefix(
			details("types", p.Types)+"; /agents run "+c.Name, "; ")})
	}
	var ticks []time.Time
	for _, sc := range on.Schedule {
		t := Trigger{Kind: "schedule", Cron: sc.Cron, Timezone: sc.Timezone, Detail: sc.Cron}
		if sc.Timezone != "" {
			t.Detail += " (" + sc.Timezone + ")"
		}
		next, err := nextTicks(sc, now, NextTicks)
		if err != nil {
			t.Error = err.Error()
		}
		t.Next = next
		ticks = append(ticks, next...)
		r.Triggers = append(r.Triggers, t)
	}
	sort.Slice(ticks, func(a, b int) bool { return ticks[a].Before(ticks[b]) })
	ticks = slices.Compact(ticks)
	if len(ticks) > NextTicks {
		ticks = ticks[:NextTicks]
	}
	r.NextTicks = ticks
	if d := on.Dispatch; d != nil {
		r.Dispatchable = true
		var names []string
		for _, in := range d.Inputs {
			v := Input{Name: in.Name, Description: in.Description, Required: in.Required, Default: in.Default, Options: in.Options}
			names = append(names, in.Name)
			if in.Name == PromptInput {
				r.TakesPrompt, r.Prompt = true, &v
				continue
			}
			r.Inputs = append(r.Inputs, v)
		}
		detail := "no inputs"
		if len(names) > 0 {
			detail = "inputs " + strings.Join(names, ", ")
		}
		r.Triggers = append(r.Triggers, Trigger{Kind: "dispatch", Detail: detail})
	}
	if on.Webhook != nil {
		r.Triggers = append(r.Triggers, Trigger{Kind: "webhook", Detail: "signed POST to /hooks/{owner}/{repo}/" + c.Name})
	}
	return r
}

// details joins the non-empty filter lists given as name, values pairs.
func details(pairs ...any) string {
	var parts []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if vs, _ := pairs[i+1].([]string); len(vs) > 0 {
			parts = append(parts, pairs[i].(string)+" "+strings.Join(vs, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// nextTicks are sc's next n ticks after now, in UTC, as the daemon fires them (both compile
// the schedule with config.Schedule.Compile).
func nextTicks(sc config.Schedule, now time.Time, n int) ([]time.Time, error) {
	s, err := sc.Compile()
	if err != nil {
		return nil, err
	}
	var out []time.Time
	t := now
	for range n {
		t = s.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t.UTC())
	}
	return out, nil
}
