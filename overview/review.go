// Package overview gathers what a person reviewing a fleet's work needs on one page: the runs
// completed since a time with their outcome, changes, report summary, verdicts and cost (the
// morning review). It reads the store and the run files the daemon keeps; it knows nothing of
// HTTP, HTML or terminals, and its types are plain structs with JSON tags that the API, the CLI
// and the web UI render. Text in them that agents wrote is returned as is: every renderer must
// escape it.
package overview

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
)

// Source is what Review reads: one listing of runs, and per run its saved files.
type Source interface {
	// ListRuns lists runs newest first (store.Store.ListRuns).
	ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error)
	// RunFile reads one saved file of a finished run; store.ErrNotFound when there is none.
	RunFile(ctx context.Context, runID, name string) ([]byte, error)
}

// MaxReviewRuns bounds the runs one review lists: the one listing query reads at most this many
// completed runs, newest first.
const MaxReviewRuns = 10000

// MaxSummary bounds the report summary of a review item, in bytes.
const MaxSummary = 600

// maxPatchScan bounds the consolidated patch read to count its lines: a bigger patch is
// counted from its first maxPatchScan bytes and marked partial.
const maxPatchScan = 4 << 20

// ReviewItem is one completed run as the morning review shows it.
type ReviewItem struct {
	RunID      string    `json:"run_id"`
	Repo       string    `json:"repo"`
	Routine    string    `json:"routine"`
	Trigger    string    `json:"trigger"` // the event kind: push, pull_request, schedule, dispatch, …
	SHA        string    `json:"sha"`
	Conclusion string    `json:"conclusion"`
	Error      string    `json:"error,omitempty"`
	FinishedAt time.Time `json:"finished_at"`
	Duration   string    `json:"duration,omitempty"`
	// PullRequest is the pull request the run opened or updated, when it recorded one.
	PullRequest *PullRequest `json:"pull_request,omitempty"`
	Diff        DiffStat     `json:"diff"`
	// Summary is the start of the run's report (its first lines, at most MaxSummary bytes).
	Summary  string    `json:"summary,omitempty"`
	Verdicts []Verdict `json:"verdicts,omitempty"`
	Usage    Usage     `json:"usage"`
	// Partial says some of the run's files could not be read (its result is not saved yet, or
	// was too big to count): the fields that come from them may be empty.
	Partial bool `json:"partial,omitempty"`
}

// PullRequest names a pull request, as the PR reporter records it (reporters.PullRequestFile).
type PullRequest struct {
	HTMLURL string `json:"html_url,omitempty"`
	Number  int    `json:"number,omitempty"`
	Repo    string `json:"repo,omitempty"`
}

// DiffStat sums a run's consolidated changes.
type DiffStat struct {
	Files     int  `json:"files"`
	Additions int  `json:"additions"`
	Deletions int  `json:"deletions"`
	Conflicts int  `json:"conflicts,omitempty"` // kept patches that could not be merged
	Partial   bool `json:"partial,omitempty"`   // the patch was too big to count whole
}

// Verdict is how one voting agent decided: its replicas' votes, or its judge.
type Verdict struct {
	Agent   string         `json:"agent"`
	Key     string         `json:"key"`
	Winner  string         `json:"winner,omitempty"`
	Reached bool           `json:"reached"`
	Quorum  int            `json:"quorum"`
	Tally   map[string]int `json:"tally,omitempty"`
	Judge   string         `json:"judge,omitempty"`
}

// Usage is a run's summed cost and tokens.
type Usage struct {
	CostUSD      float64 `json:"cost_usd"`
	InputTokens  int     `json:"input_tokens"`
	OutputTokens int     `json:"output_tokens"`
}

// Review is the morning review: the runs completed at or after Since, newest first.
type Review struct {
	Since time.Time    `json:"since"`
	Items []ReviewItem `json:"items"`
	Usage Usage        `json:"usage"` // the sum over Items
	// Truncated says more than MaxReviewRuns completed runs were listed: older ones are missing.
	Truncated bool `json:"truncated,omitempty"`
}

// ReviewSince gathers the review of the runs completed at or after since (zero: the last 24
// hours before now). What it reads: one ListRuns query (the completed runs finished since,
// newest first, at most MaxReviewRuns rows, no plans; the store's index on the finish time
// finds them), then for each its result.json,
// report.md, combined.patch (counted, at most 4 MiB) and pull_request.json through src.RunFile.
// A run whose files are missing is still listed, marked Partial.
func ReviewSince(ctx context.Context, src Source, since, now time.Time) (*Review, error) {
	if since.IsZero() {
		since = now.Add(-24 * time.Hour)
	}
	// A run created long ago may have finished recently (a rerun, a long queue): the filter is
	// on the finish time, not the creation.
	runs, err := src.ListRuns(ctx, store.RunFilter{Status: store.RunCompleted, FinishedAfter: since, Limit: MaxReviewRuns})
	if err != nil {
		return nil, fmt.Errorf("review: %w", err)
	}
	rv := &Review{Since: since.UTC(), Items: []ReviewItem{}, Truncated: len(runs) >= MaxReviewRuns}
	for _, r := range runs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		it := item(ctx, src, r)
		rv.Usage.CostUSD += it.Usage.CostUSD
		rv.Usage.InputTokens += it.Usage.InputTokens
		rv.Usage.OutputTokens += it.Usage.OutputTokens
		rv.Items = append(rv.Items, it)
	}
	return rv, nil
}

func item(ctx context.Context, src Source, r store.Run) ReviewItem {
	it := ReviewItem{RunID: r.ID, Repo: r.Repo, Routine: r.Routine, Trigger: r.EventKind, SHA: r.SHA,
		Conclusion: r.Conclusion, Error: r.Error, FinishedAt: r.FinishedAt.UTC()}
	if !r.StartedAt.IsZero() && r.FinishedAt.After(r.StartedAt) {
		it.Duration = r.FinishedAt.Sub(r.StartedAt).Round(time.Second).String()
	}
	var res result.Run
	b, err := src.RunFile(ctx, r.ID, "result.json")
	if err == nil {
		err = json.Unmarshal(b, &res)
	}
	if err != nil {
		it.Partial = true
	} else {
		u := res.Usage()
		it.Usage = Usage{CostUSD: u.CostUSD, InputTokens: u.InputTokens, OutputTokens: u.OutputTokens}
		it.Diff.Files = len(res.Files)
		it.Diff.Conflicts = len(res.Conflicts)
		it.Verdicts = verdicts(res.Agents)
		it.Summary = Summary(res.Report)
	}
	if b, err := src.RunFile(ctx, r.ID, "report.md"); err == nil {
		it.Summary = Summary(string(b))
	}
	if b, err := src.RunFile(ctx, r.ID, "combined.patch"); err == nil {
		if len(b) > maxPatchScan {
			b, it.Diff.Partial = b[:maxPatchScan], true
		}
		files, add, del := countPatch(b)
		it.Diff.Additions, it.Diff.Deletions = add, del
		if it.Diff.Files == 0 {
			it.Diff.Files = files
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		it.Partial = true
	}
	if b, err := src.RunFile(ctx, r.ID, PullRequestFile); err == nil {
		var pr PullRequest
		if json.Unmarshal(b, &pr) == nil && (pr.Number > 0 || pr.HTMLURL != "") {
			it.PullRequest = &pr
		}
	}
	return it
}

// PullRequestFile names the run file ({"html_url": "…", "number": N, "repo": "owner/name"}) in
// which the pull-request reporter records the pull request a run opened or updated (the same
// name as reporters.PullRequestFile, which this package does not import).
const PullRequestFile = "pull_request.json"

func verdicts(agents []*result.Agent) []Verdict {
	var out []Verdict
	for _, a := range agents {
		if a == nil {
			continue
		}
		votes := a.Votes
		if a.Vote != nil {
			votes = append([]*result.Vote{a.Vote}, votes...)
		}
		for _, v := range votes {
			if v == nil {
				continue
			}
			vd := Verdict{Agent: a.Name, Key: v.Key, Reached: v.Reached, Quorum: v.Quorum, Tally: v.Tally, Judge: v.Judge}
			if v.Winner != nil {
				vd.Winner = fmt.Sprint(v.Winner)
			}
			out = append(out, vd)
		}
	}
	return out
}

// Summary returns the start of a report: its first non-empty lines up to MaxSummary bytes,
// cut at a line or at a valid UTF-8 boundary, with "…" when something was left out.
func Summary(report string) string {
	var lines []string
	n := 0
	cut := false
	for _, l := range strings.Split(report, "\n") {
		l = strings.TrimRight(l, " \t\r")
		if l == "" && len(lines) == 0 {
			continue
		}
		if len(lines) == 5 || n+len(l) > MaxSummary {
			if n == 0 {
				lines = append(lines, strings.ToValidUTF8(l[:MaxSummary], ""))
			}
			cut = true
			break
		}
		lines = append(lines, l)
		n += len(l) + 1
	}
	s := strings.TrimRight(strings.Join(lines, "\n"), "\n")
	if cut {
		s += "…"
	}
	return s
}

// countPatch counts a unified diff's files and added and deleted lines.
func countPatch(p []byte) (files, add, del int) {
	for len(p) > 0 {
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		switch {
		case bytes.HasPrefix(line, []byte("diff --git ")):
			files++
		case bytes.HasPrefix(line, []byte("+++ ")), bytes.HasPrefix(line, []byte("--- ")):
		case len(line) > 0 && line[0] == '+':
			add++
		case len(line) > 0 && line[0] == '-':
			del++
		}
	}
	return files, add, del
}
