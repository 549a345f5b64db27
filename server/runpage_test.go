package server_test

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// hostileReport is what an agent might write to break out of the page: a script, an image
// whose error handler runs one, markup closing the <pre>, and terminal escapes.
const hostileReport = "# Audit\n<script>alert('pwned')</script>\n<img src=x onerror=\"alert(1)\">\n" +
	"</pre><a href=\"javascript:alert(2)\">click</a>\n\x1b]52;c;cHduZWQ=\x07\x1b[2J done\n"

func runPageServer(t *testing.T) (store.Store, *server.RunPage, string) {
	t.Helper()
	st := storetest.SQLite(t).Open(t)
	key, err := st.Key(t.Context(), server.RunPageKeyName)
	if err != nil {
		t.Fatal(err)
	}
	page := &server.RunPage{Store: st, Key: key}
	mux := http.NewServeMux()
	page.Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return st, page, hs.URL
}

func getPage(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Only the link with the run's capability opens its page; every other request gets the same
// 404 as a run that does not exist, so nobody learns which runs exist.
func TestRunPageNeedsTheRunsCapability(t *testing.T) {
	st, page, base := runPageServer(t)
	ctx := t.Context()
	for _, id := range []string{"r-one", "r-two"} {
		if _, _, err := st.CreateRun(ctx, store.Run{ID: id, Key: id, Repo: "acme/app", Routine: "audit"}); err != nil {
			t.Fatal(err)
		}
	}
	resp, body := getPage(t, page.URL(base, "r-one"))
	if resp.StatusCode != 200 || !strings.Contains(body, "audit") {
		t.Fatalf("the run's own link: %d %q", resp.StatusCode, body)
	}
	_, missing := getPage(t, base+"/runs/r-none?k="+page.Capability("r-none"))
	for name, u := range map[string]string{
		"no capability":           base + "/runs/r-one",
		"an empty capability":     base + "/runs/r-one?k=",
		"another run's":           base + "/runs/r-one?k=" + page.Capability("r-two"),
		"a capability one off":    base + "/runs/r-one?k=" + flipLast(page.Capability("r-one")),
		"a run that is not there": base + "/runs/r-nope?k=AAAA",
	} {
		resp, body := getPage(t, u)
		if resp.StatusCode != http.StatusNotFound || body != missing {
			t.Errorf("%s: %d %q, want 404 like a missing run (%q)", name, resp.StatusCode, body, missing)
		}
	}
	// Another key (another database) makes other links.
	other := &server.RunPage{Key: []byte("another store's key, 32 bytes..")}
	if other.Capability("r-one") == page.Capability("r-one") {
		t.Error("two keys sign a run alike")
	}
}

func flipLast(s string) string {
	b := []byte(s)
	if b[len(b)-1] == 'A' {
		b[len(b)-1] = 'B'
	} else {
		b[len(b)-1] = 'A'
	}
	return string(b)
}

// A report and job errors an agent wrote are shown as text: no element, attribute or
// terminal escape of theirs reaches the page, and the page says what happened.
func TestRunPageShowsAgentTextInert(t *testing.T) {
	st, page, base := runPageServer(t)
	ctx := t.Context()
	const id = "r-hostile"
	start := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	if _, _, err := st.CreateRun(ctx, store.Run{ID: id, Key: id, Repo: "acme/app", Routine: "audit", EventKind: "pull_request",
		SHA: "0123456789abcdef0123456789abcdef01234567", Status: store.RunCompleted, Conclusion: "failure",
		Error: "agent fix failed <b>bold</b>", CreatedAt: start, StartedAt: start, FinishedAt: start.Add(95 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	res := `{"jobs":[{"id":"audit[api]","agent":"audit","outcome":"success","started":"2026-12-05T09:00:00Z","finished":"2026-12-05T09:01:02Z"},` +
		`{"id":"fix","agent":"fix","outcome":"failed","error":"<img src=x onerror=alert(3)>\u001b[31m red","blocked":["evil.example:443"],` +
		`"log_tail":"step 3 <iframe src=//evil.example></iframe>\u001b]8;;http://evil.example\u0007link"}],"report":"ignored"}`
	for name, data := range map[string]string{"result.json": res, "report.md": hostileReport} {
		if err := st.SaveRunFile(ctx, id, name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	resp, body := getPage(t, page.URL(base, id))
	if resp.StatusCode != 200 {
		t.Fatalf("page: %d %s", resp.StatusCode, body)
	}
	// The page's one link is the runner's own, to the run in the control room.
	ui := `<a href="/ui/runs/` + id + `">Open this run in the control room</a>`
	if strings.Count(body, ui) != 1 {
		t.Errorf("the page does not link the control room's run page once")
	}
	agentText := strings.Replace(body, ui, "", 1)
	for _, bad := range []string{"<script>", "<img", "onerror=\"", "<a href", "</pre><a", "\x1b", "\x07", "<b>", "<iframe"} {
		if strings.Contains(agentText, bad) {
			t.Errorf("the page holds %q raw", bad)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;", "&lt;img src=x onerror=", `\x1b]52;c;cHduZWQ=\x07\x1b[2J done`,
		"acme/app", "audit", "pull_request", "0123456789ab", "failure", "2026-12-05 09:01:35 UTC", "1m35s",
		"audit[api]", "1m2s", "fix", "failed", `\x1b[31m red`, "evil.example:443", "agent fix failed &lt;b&gt;bold&lt;/b&gt;",
		"The last lines of fix's log", `step 3 &lt;iframe src=//evil.example&gt;&lt;/iframe&gt;\x1b]8;;http://evil.example\x07link`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, "http-equiv=\"refresh\"") {
		t.Error("a finished run's page reloads itself")
	}
	if !regexp.MustCompile(`<meta name="viewport" content="width=device-width`).MatchString(body) {
		t.Error("no viewport: unreadable on a phone")
	}
}

// The page's headers: no script may run, no frame may hold it, the capability leaves in no
// Referer and stays in no shared cache; the one inline style sheet is allowed by its hash.
func TestRunPageHeaders(t *testing.T) {
	st, page, base := runPageServer(t)
	if _, _, err := st.CreateRun(t.Context(), store.Run{ID: "r1", Key: "r1", Repo: "acme/app", Routine: "audit", Status: store.RunRunning}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{page.URL(base, "r1"), base + "/runs/r1"} {
		resp, body := getPage(t, u)
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", u, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") {
			t.Errorf("%s: CSP %q lets something run", u, csp)
		}
		for k, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "private"} {
			if !strings.Contains(h.Get(k), want) {
				t.Errorf("%s: %s = %q, want %q", u, k, h.Get(k), want)
			}
		}
		if resp.StatusCode != 200 {
			continue
		}
		if ct := h.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(body)
		if m == nil {
			t.Fatal("no style sheet in the page")
		}
		sum := sha256.Sum256([]byte(m[1]))
		if hash := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, "style-src "+hash) {
			t.Errorf("CSP %q does not allow the page's style sheet (%s): the page would show unstyled", csp, hash)
		}
		if !strings.Contains(body, `http-equiv="refresh"`) || !strings.Contains(body, "not over") {
			t.Error("a running run's page does not reload itself")
		}
	}
}
