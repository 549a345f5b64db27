package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/overview"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
)

// `runner review` prints the runs a real daemon finished since a time, from the files its
// store keeps, with the agents' text escaped; --json is the API's answer, still valid JSON.
func TestReviewFromTheCLI(t *testing.T) {
	st, _, url, tok := testDaemon(t, map[string]string{".agents/x.yaml": "on: {dispatch: {}}\nagents:\n  a: {image: x, command: [x]}\n"})
	ctx := t.Context()
	now := time.Now().UTC()
	finish := func(id string, at time.Time) {
		t.Helper()
		if _, _, err := st.CreateRun(ctx, store.Run{ID: id, Repo: "acme/app", Routine: "nightly", SHA: "abc", EventKind: "schedule", CreatedAt: at.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := st.UpdateRun(ctx, store.Run{ID: id, Status: store.RunCompleted, Conclusion: "success", StartedAt: at.Add(-2 * time.Minute), FinishedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	finish("last-week", now.AddDate(0, 0, -7))
	finish("tonight", now.Add(-3*time.Hour))
	res, _ := json.Marshal(result.Run{
		Jobs:   []*result.Job{{ID: "fix", Usage: result.Usage{CostUSD: 1.25, InputTokens: 900, OutputTokens: 100}}},
		Agents: []*result.Agent{{Name: "verify", Vote: &result.Vote{Key: "verdict", Quorum: 2, Winner: "yes", Reached: true, Tally: map[string]int{"yes": 2, "no": 1}}}},
	})
	for name, data := range map[string]string{
		"result.json":            string(res),
		"report.md":              "# Fixed \x1b]52;c;cHduZWQ=\x07the tests\n\nThey \u202eslept\u202c too long.\u009b2J\n\nSecond paragraph, not shown.\n",
		"combined.patch":         "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1,2 @@\n-a\n+b\n+c\n",
		overview.PullRequestFile: `{"html_url": "https://github.com/acme/app/pull/7", "number": 7, "repo": "acme/app"}`,
	} {
		if err := st.SaveRunFile(ctx, "tonight", name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	api := []string{"--server", url, "--token", tok}

	code, out, errOut := runCLI(t, append([]string{"review"}, api...)...)
	if code != 0 {
		t.Fatalf("review: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"1 run finished since", "$1.25", "success  acme/app  nightly (schedule)  run tonight  2m0s",
		"pull request #7 https://github.com/acme/app/pull/7", "1 file, +2 -1", "verify.verdict: yes (no 1, yes 2; quorum 2)",
		`│ # Fixed \x1b]52;c;cHduZWQ=\x07the tests`, `│ They \u202eslept\u202c too long.\u009b2J`} {
		if !strings.Contains(out, want) {
			t.Errorf("review output lacks %q:\n%s", want, out)
		}
	}
	if strings.ContainsAny(out, "\x1b\x07\u202e\u009b") || strings.Contains(out, "Second paragraph") || strings.Contains(out, "last-week") {
		t.Errorf("review output has raw escapes, the second paragraph or an old run:\n%q", out)
	}

	code, out, errOut = runCLI(t, append([]string{"review", "--since", "8d", "--json"}, api...)...)
	if code != 0 {
		t.Fatalf("review --json: exit %d: %s", code, errOut)
	}
	var rv overview.Review
	if err := json.Unmarshal([]byte(out), &rv); err != nil {
		t.Fatalf("review --json is not JSON: %v\n%s", err, out)
	}
	if len(rv.Items) != 2 || rv.Items[0].RunID != "tonight" || rv.Items[1].RunID != "last-week" ||
		!strings.Contains(rv.Items[0].Summary, "\u202eslept") || rv.Items[0].PullRequest.Number != 7 {
		t.Errorf("review --json = %+v", rv)
	}
	if strings.ContainsAny(out, "\u202e\u009b") {
		t.Errorf("the JSON carries raw bidi or C1 controls:\n%q", out)
	}

	code, _, errOut = runCLI(t, append([]string{"review", "--since", "yesterday"}, api...)...)
	if code == 0 || !strings.Contains(errOut, "want a duration back from now") || !strings.Contains(errOut, "HTTP 400") {
		t.Errorf("review --since yesterday: exit %d: %s", code, errOut)
	}
}
