package web

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/store"
)

// A re-run redirects to the new run's page; cancelling a job redirects back to the job's page.
// Both need the dispatch scope and the session's CSRF token, and refuse a cross-site post.
func TestRerunAndCancelJobFromTheUI(t *testing.T) {
	srv, st, ctl := setup(t)
	post := func(c *http.Client, path, csrf string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	viewer, vcsrf := signIn(t, srv, st, "viewer", store.ScopeRead)
	op, csrf := signIn(t, srv, st, "operator", store.ScopeDispatch)
	for _, path := range []string{"/ui/runs/r1/rerun", "/ui/runs/r1/jobs/review%5Bb%5D%232/cancel"} {
		if res := post(viewer, path, vcsrf, nil); res.StatusCode != http.StatusForbidden {
			t.Errorf("%s by a read session: %s, want 403", path, res.Status)
		}
		for name, tc := range map[string]struct {
			csrf string
			hdr  map[string]string
		}{
			"no CSRF token":        {"", nil},
			"a wrong CSRF token":   {"x" + csrf, nil},
			"another origin":       {csrf, map[string]string{"Origin": "https://evil.example"}},
			"Sec-Fetch-Site cross": {csrf, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		} {
			if res := post(op, path, tc.csrf, tc.hdr); res.StatusCode != http.StatusForbidden {
				t.Errorf("%s with %s: %s, want 403", path, name, res.Status)
			}
		}
	}
	if len(ctl.rerun) != 0 || len(ctl.jobs) != 0 {
		t.Fatalf("refused posts reached the controller: re-runs %v, job cancels %v", ctl.rerun, ctl.jobs)
	}

	res := post(op, "/ui/runs/r1/rerun", csrf, nil)
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || loc != "/ui/runs/rnew" {
		t.Errorf("re-run: %s to %q, want 303 to the new run /ui/runs/rnew", res.Status, loc)
	}
	res = post(op, "/ui/runs/r1/jobs/review%5Bb%5D%232/cancel", csrf, nil)
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || loc != "/ui/runs/r1/jobs/review%5Bb%5D%232" {
		t.Errorf("job cancel: %s to %q, want 303 back to the job's page", res.Status, loc)
	}
	if len(ctl.rerun) != 1 || ctl.rerun[0] != "r1" || len(ctl.jobs) != 1 || ctl.jobs[0] != "r1/review[b]#2" {
		t.Errorf("controller saw re-runs %v and job cancels %v, want r1 and r1/review[b]#2", ctl.rerun, ctl.jobs)
	}
}

// A re-run says which run it re-runs, on the runs page, in its JSON and on its own page.
func TestRunsListShowsRerunOf(t *testing.T) {
	srv, st, _ := setup(t)
	for _, r := range []store.Run{{ID: "rorig", Repo: "o/r", Routine: "x"}, {ID: "ragain", Repo: "o/r", Routine: "x", RerunOf: "rorig"}} {
		if _, _, err := st.CreateRun(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := signIn(t, srv, st, "viewer", store.ScopeRead)
	for path, want := range map[string]string{
		"/ui/runs":        `re-run of rorig`,
		"/ui/runs.json":   `"RerunOf":"rorig"`,
		"/ui/runs/ragain": `<a href="/ui/runs/rorig">rorig</a>`,
	} {
		res, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %s, want %q in %s", path, res.Status, want, b)
		}
	}
}
