package overview_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/overview"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

func completedRun(t *testing.T, st store.Store, id, conclusion string, finished time.Time) {
	t.Helper()
	ctx := t.Context()
	r, _, err := st.CreateRun(ctx, store.Run{ID: id, Repo: "acme/app", Routine: "nightly", SHA: "abc123", EventKind: "schedule"})
	if err != nil {
		t.Fatal(err)
	}
	r.Status, r.Conclusion = store.RunCompleted, conclusion
	r.StartedAt, r.FinishedAt = finished.Add(-90*time.Second), finished
	if err := st.UpdateRun(ctx, r); err != nil {
		t.Fatal(err)
	}
}

func TestReviewListsTheRunsFinishedSinceWithTheirFiles(t *testing.T) {
	for name, db := range map[string]storetest.NewDB{"sqlite": storetest.SQLite} {
		t.Run(name, func(t *testing.T) {
			st := db(t).Open(t)
			ctx := t.Context()
			now := time.Now().UTC().Truncate(time.Second)
			completedRun(t, st, "old", "success", now.Add(-48*time.Hour))
			completedRun(t, st, "fixed", "success", now.Add(-2*time.Hour))
			completedRun(t, st, "failed", "failure", now.Add(-1*time.Hour))
			if _, _, err := st.CreateRun(ctx, store.Run{ID: "running", Repo: "acme/app", Routine: "nightly"}); err != nil {
				t.Fatal(err)
			}
			res := result.Run{
				Report: "\n# Fixed the flaky tests\n\nThree tests waited on sleeps.\n",
				Files:  []result.FileChange{{Path: "a_test.go", Status: "modified"}},
				Jobs:   []*result.Job{{ID: "fix", Usage: result.Usage{CostUSD: 0.5, InputTokens: 1000, OutputTokens: 200}}},
				Agents: []*result.Agent{{Name: "verify", Vote: &result.Vote{Key: "verdict", Quorum: 2, Winner: "yes", Reached: true, Tally: map[string]int{"yes": 2, "no": 1}}}},
			}
			b, _ := json.Marshal(res)
			for name, data := range map[string][]byte{
				"result.json":            b,
				"combined.patch":         []byte("diff --git a/a_test.go b/a_test.go\n--- a/a_test.go\n+++ b/a_test.go\n@@ -1,2 +1,3 @@\n-old\n+new\n+more\n"),
				overview.PullRequestFile: []byte(`{"html_url": "https://github.com/acme/app/pull/7", "number": 7, "repo": "acme/app"}`),
			} {
				if err := st.SaveRunFile(ctx, "fixed", name, data); err != nil {
					t.Fatal(err)
				}
			}

			rv, err := overview.ReviewSince(ctx, st, time.Time{}, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(rv.Items) != 2 || rv.Items[0].RunID != "failed" || rv.Items[1].RunID != "fixed" {
				t.Fatalf("items = %+v, want failed then fixed (old and running left out)", rv.Items)
			}
			if !rv.Items[0].Partial {
				t.Errorf("a run without saved files should be partial: %+v", rv.Items[0])
			}
			it := rv.Items[1]
			if it.Diff != (overview.DiffStat{Files: 1, Additions: 2, Deletions: 1}) {
				t.Errorf("diff = %+v", it.Diff)
			}
			if it.PullRequest == nil || it.PullRequest.Number != 7 || it.PullRequest.HTMLURL != "https://github.com/acme/app/pull/7" || it.PullRequest.Repo != "acme/app" {
				t.Errorf("pull request = %+v", it.PullRequest)
			}
			if it.Summary != "# Fixed the flaky tests\n\nThree tests waited on sleeps." {
				t.Errorf("summary = %q", it.Summary)
			}
			if len(it.Verdicts) != 1 || it.Verdicts[0].Winner != "yes" || !it.Verdicts[0].Reached {
				t.Errorf("verdicts = %+v", it.Verdicts)
			}
			if it.Usage.CostUSD != 0.5 || rv.Usage.InputTokens != 1000 || it.Duration != "1m30s" || it.Trigger != "schedule" {
				t.Errorf("item = %+v, total usage %+v", it, rv.Usage)
			}

			rv, err = overview.ReviewSince(ctx, st, now.Add(-90*time.Minute), now)
			if err != nil || len(rv.Items) != 1 || rv.Items[0].RunID != "failed" {
				t.Fatalf("since 90m ago: %+v, %v", rv, err)
			}
		})
	}
}

func TestSummaryCutsLongReports(t *testing.T) {
	long := strings.Repeat("é", overview.MaxSummary)
	if s := overview.Summary(long); len(s) > overview.MaxSummary+len("…") || !strings.HasSuffix(s, "…") || !strings.HasPrefix(s, "éé") {
		t.Errorf("summary of one long line = %q", s)
	}
	if s := overview.Summary("1\n2\n3\n4\n5\n6\n7"); s != "1\n2\n3\n4\n5…" {
		t.Errorf("summary of seven lines = %q", s)
	}
}
