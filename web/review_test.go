package web

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/overview"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
)

func completed(t *testing.T, st store.Store, id string, finished time.Time) {
	t.Helper()
	ctx := t.Context()
	if _, _, err := st.CreateRun(ctx, store.Run{ID: id, Repo: "acme/app", Routine: "nightly", SHA: "0123456789abcdef", EventKind: "schedule", CreatedAt: finished.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateRun(ctx, store.Run{ID: id, Status: store.RunCompleted, Conclusion: "success", StartedAt: finished.Add(-time.Minute), FinishedAt: finished}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestReviewPageShowsTheNightsRunsSafely(t *testing.T) {
	srv, st, _ := setup(t)
	ctx := t.Context()
	now := time.Now().UTC()
	completed(t, st, "old", now.Add(-50*time.Hour))
	completed(t, st, "night", now.Add(-5*time.Hour))
	res, _ := json.Marshal(result.Run{
		Jobs:   []*result.Job{{ID: "fix", Usage: result.Usage{CostUSD: 2.5}}},
		Agents: []*result.Agent{{Name: "verify", Vote: &result.Vote{Key: "verdict", Quorum: 2, Winner: "yes", Reached: true, Tally: map[string]int{"yes": 2, "no": 1}}}},
	})
	for name, data := range map[string]string{
		"result.json": string(res),
		"report.md": "# Flaky tests fixed\n\nThey slept <script>alert(1)</script> too long; " +
			"[see](javascript:alert(2)) **bold**.\n\nSecond paragraph stays out.\n",
		"combined.patch":         "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1,2 @@\n-a\n+b\n+c\n",
		overview.PullRequestFile: `{"html_url": "https://github.com/acme/app/pull/7", "number": 7, "repo": "acme/app"}`,
	} {
		if err := st.SaveRunFile(ctx, "night", name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := signIn(t, srv, st, "viewer", store.ScopeRead)

	code, page := get(t, c, srv.URL+"/ui/review")
	if code != http.StatusOK {
		t.Fatalf("review: %d %s", code, page)
	}
	for _, want := range []string{`href="/ui/runs/night"`, `<a href="https://github.com/acme/app/pull/7" rel="noreferrer">Pull request #7</a>`,
		`1 file <span class="add">+2</span> <span class="del">−1</span>`, "verify.verdict: <strong>yes</strong> (no 1, yes 2; quorum 2)",
		"$2.50", "<h1>Flaky tests fixed</h1>", "<strong>bold</strong>", "1 run finished since"} {
		if !strings.Contains(page, want) {
			t.Errorf("review page lacks %q:\n%s", want, page)
		}
	}
	for _, bad := range []string{"<script>alert", "javascript:", "Second paragraph", "/ui/runs/old"} {
		if strings.Contains(page, bad) {
			t.Errorf("review page has %q:\n%s", bad, page)
		}
	}

	code, page = get(t, c, srv.URL+"/ui/review?since=3d")
	if code != http.StatusOK || !strings.Contains(page, "/ui/runs/old") || !strings.Contains(page, "2 runs finished since") {
		t.Errorf("review since 3d: %d, want both runs:\n%s", code, page)
	}
	code, page = get(t, c, srv.URL+"/ui/review?since=1h")
	if code != http.StatusOK || !strings.Contains(page, "No runs finished since then.") {
		t.Errorf("review since 1h: %d, want none:\n%s", code, page)
	}
	code, page = get(t, c, srv.URL+"/ui/review?since=%3Cb%3Eyesterday")
	if code != http.StatusBadRequest || !strings.Contains(page, "want a duration back from now") || strings.Contains(page, "<b>yesterday") {
		t.Errorf("review since <b>yesterday: %d:\n%s", code, page)
	}

	anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res2, err := anon.Get(srv.URL + "/ui/review")
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res2.Header.Get("Location"), "/ui/login?next=") {
		t.Errorf("review without a session: %s to %q", res2.Status, res2.Header.Get("Location"))
	}
}
