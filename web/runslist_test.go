package web

import (
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/store"
)

var (
	rowRe   = regexp.MustCompile(`<tr><td><a href="/ui/runs/([^"]+)">`)
	olderRe = regexp.MustCompile(`<a href="([^"]+)" rel="next">Older →</a>`)
)

// The runs list filters on the trigger and pages back with "Older →" (a keyset cursor): every
// run shows once, only the first page polls, and a new run does not shift the older pages.
func TestRunsListFiltersByTriggerAndPagesOlder(t *testing.T) {
	srv, st, _ := setup(t)
	ctx := t.Context()
	base := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	const n = 2*pageSize + 20
	for i := range n {
		ev := "push"
		if i%3 == 0 {
			ev = "schedule"
		}
		// Pairs of runs share a creation time: the id orders them.
		if _, _, err := st.CreateRun(ctx, store.Run{ID: fmt.Sprintf("run-%03d", i), Repo: "acme/app", Routine: "nightly",
			EventKind: ev, CreatedAt: base.Add(time.Duration(i/2) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := signIn(t, srv, st, "viewer", store.ScopeRead)

	seen := map[string]bool{}
	var order []string
	next := "/ui/runs"
	for page := 0; next != ""; page++ {
		code, body := get(t, c, srv.URL+next)
		if code != http.StatusOK {
			t.Fatalf("page %d (%s): %d %s", page, next, code, body)
		}
		ids := rowRe.FindAllStringSubmatch(body, -1)
		polls := strings.Contains(body, `data-poll="/ui/runs.json?"`)
		if page == 0 != polls {
			t.Errorf("page %d polls = %v, want only the first page to", page, polls)
		}
		if page > 0 && !strings.Contains(body, `<a href="/ui/runs?">← Newest</a>`) {
			t.Errorf("page %d has no link back to the newest", page)
		}
		want := pageSize
		if page == 2 {
			want = n - 2*pageSize
		}
		if len(ids) != want {
			t.Errorf("page %d lists %d runs, want %d", page, len(ids), want)
		}
		for _, m := range ids {
			if seen[m[1]] {
				t.Errorf("run %s listed twice", m[1])
			}
			seen[m[1]] = true
			order = append(order, m[1])
		}
		next = ""
		if m := olderRe.FindStringSubmatch(body); m != nil {
			next = html.UnescapeString(m[1])
		}
		if page == 0 {
			// A run arriving while the reader pages back shows on the first page only.
			if _, _, err := st.CreateRun(ctx, store.Run{ID: "run-late", Repo: "acme/app", Routine: "nightly", EventKind: "push", CreatedAt: base.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if page > 3 {
			t.Fatal("the pages do not end")
		}
	}
	if len(seen) != n || order[0] != fmt.Sprintf("run-%03d", n-1) || order[n-1] != "run-000" || seen["run-late"] {
		t.Errorf("saw %d runs, first %s last %s (late run seen: %v), want all %d newest first", len(seen), order[0], order[len(order)-1], seen["run-late"], n)
	}

	// The trigger filter, kept by the next page's link and by the poll.
	// 80 push runs (and run-late): two pages.
	code, body := get(t, c, srv.URL+"/ui/runs?trigger=push")
	ids := rowRe.FindAllStringSubmatch(body, -1)
	if code != http.StatusOK || len(ids) != pageSize || !strings.Contains(body, `<option value="push" selected>`) ||
		!strings.Contains(body, `data-poll="/ui/runs.json?trigger=push"`) {
		t.Fatalf("trigger=push: %d, %d rows", code, len(ids))
	}
	m := olderRe.FindStringSubmatch(body)
	if m == nil || !strings.Contains(html.UnescapeString(m[1]), "trigger=push") {
		t.Fatalf("the older link of a filtered list: %v", m)
	}
	_, body = get(t, c, srv.URL+html.UnescapeString(m[1]))
	ids = append(ids, rowRe.FindAllStringSubmatch(body, -1)...)
	if len(ids) != n-n/3+1 || olderRe.MatchString(body) {
		t.Errorf("push runs over two pages: %d, want %d", len(ids), n-n/3+1)
	}
	for _, m := range ids {
		var i int
		if _, err := fmt.Sscanf(m[1], "run-%d", &i); err == nil && i%3 == 0 {
			t.Errorf("trigger=push lists %s, a scheduled run", m[1])
		}
	}

	// The JSON twin pages the same way, naming the next page in a Link header.
	res, err := c.Get(srv.URL + "/ui/runs.json?trigger=push")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if link := res.Header.Get("Link"); res.StatusCode != http.StatusOK || !strings.HasPrefix(link, "</ui/runs.json?before=") || !strings.Contains(link, "trigger=push") {
		t.Errorf("runs.json: %s, Link %q", res.Status, link)
	}
	for _, path := range []string{"/ui/runs?before=nonsense", "/ui/runs.json?before=12_"} {
		if code, body := get(t, c, srv.URL+path); code != http.StatusBadRequest || !strings.Contains(body, "run cursor") {
			t.Errorf("%s: %d %s, want 400 naming the cursor", path, code, body)
		}
	}
}
