package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/internal/browsertest"
	"github.com/agentrunner/agentrunner/internal/dockertest"
)

// hostileReport is what a compromised agent writes as its report: each line would run script
// in the reader's browser if the control room rendered it as HTML.
const hostileReport = "# Findings\n\n<script>alert('script from the report')</script>\n\n" +
	"<img src=x onerror=\"alert('img from the report')\">\n\n[click me](javascript:alert(1))\n"

// agentRoutine is a dispatchable routine whose one agent "a" runs the test agent with argv.
func agentRoutine(name string, argv ...string) string {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = strconv.Quote(a) // a Go-quoted string is a YAML double-quoted one
	}
	return "name: " + name + "\non: {dispatch: {}}\ndefaults: {image: " + dockertest.TestAgentTag +
		", timeout: 15m}\nagents:\n  a:\n    command: [" + strings.Join(quoted, ", ") + "]\n"
}

// routines: "report" finishes at once with the hostile report; "slow" prints and then works
// for ten minutes, so it is running when the test cancels it.
func routines() map[string]string {
	return map[string]string{
		"README.md":           "hello\n",
		".agents/report.yaml": agentRoutine("report", "/testagent", "report", hostileReport, "print", "done"),
		".agents/slow.yaml":   agentRoutine("slow", "/testagent", "print", "working", "sleep", "10m"),
	}
}

// signIn signs in through the login form with an API token, as a person does, and lands on
// the runs list.
func signIn(t *testing.T, p *browsertest.Page, base, token string) {
	t.Helper()
	p.Goto(base + "/ui/runs") // not signed in: sent to the login form
	if u := p.URL(); !strings.Contains(u, "/ui/login") {
		t.Fatalf("without a session /ui/runs shows %s, want the login form", u)
	}
	p.Screenshots("login")
	p.SetValue("#token", token)
	p.ClickAndWait(`form[action="/ui/login"] button[type=submit]`)
	if u := p.URL(); !strings.HasSuffix(u, "/ui/runs") {
		t.Fatalf("after signing in the page is %s, want /ui/runs; it shows:\n%s", u, p.Text("body"))
	}
}

// inert checks that nothing of the hostile report became live markup on the page: no dialog
// opened, no script but the UI's own, no event-handler attribute, no javascript: link; and,
// when shown is not empty, that the page shows that text of the report.
func inert(t *testing.T, p *browsertest.Page, where, shown string) {
	t.Helper()
	time.Sleep(500 * time.Millisecond) // an <img onerror> would have fired by now
	if got := p.TakeDialogs(); len(got) > 0 {
		t.Errorf("%s: the report opened dialogs %q", where, got)
	}
	if n := browsertest.Eval[int](p, `document.querySelectorAll('script:not([src^="/ui/assets/"])').length`); n != 0 {
		t.Errorf("%s: %d script element(s) not the UI's own", where, n)
	}
	if n := browsertest.Eval[int](p, `document.querySelectorAll('[onerror],[onload],[onclick]').length`); n != 0 {
		t.Errorf("%s: %d element(s) with an event-handler attribute", where, n)
	}
	if n := browsertest.Eval[int](p, `Array.from(document.querySelectorAll('a[href]')).filter(a => a.protocol === 'javascript:').length`); n != 0 {
		t.Errorf("%s: %d javascript: link(s)", where, n)
	}
	if body := p.Text("body"); !strings.Contains(body, shown) {
		t.Errorf("%s: the report is not shown; the page shows:\n%s", where, body)
	}
}

var runPath = regexp.MustCompile(`/ui/runs/([^/?#]+)$`)

// The control room as a person uses it, against a real daemon running real containers: sign in
// with a token; a dispatched run appears in the list without a reload; Cancel stops a running
// agent (its container goes) and the run shows cancelled; Re-run starts a finished run again;
// a hostile report renders inert on the run page and the morning review; no page logs an
// error; every page is photographed at desktop and phone width.
func TestControlRoomInTheBrowser(t *testing.T) {
	d := startDaemon(t, routines())
	tok := d.token("browser", "dispatch")
	p := browsertest.New(t)

	signIn(t, p, d.URL, tok)
	// A run dispatched now shows up in the list the browser already has open.
	browsertest.Eval[int](p, `window.notReloaded = 1`)
	report := d.dispatch(tok, "report")
	p.WaitText("#runs tbody", report, 15*time.Second)
	done := d.waitRun(tok, report, "completed", 90*time.Second)
	if done.Conclusion != "success" {
		t.Fatalf("the report run concluded %s, want success", done.Conclusion)
	}
	p.WaitFor("the list to show the run completed", 15*time.Second, func() bool {
		return strings.Contains(p.Text("#runs tbody"), "completed")
	})
	if browsertest.Eval[int](p, `window.notReloaded || 0`) != 1 {
		t.Error("the runs list reloaded the page to show the new run; it should update in place")
	}
	p.Screenshots("runs")

	// The hostile report renders as text on the run page.
	p.Goto(d.URL + "/ui/runs/" + report)
	p.WaitText("h1", report, 5*time.Second)
	inert(t, p, "run page", "click me")
	p.Screenshots("run-report")

	// Cancel a running agent from its run page.
	slow := d.dispatch(tok, "slow")
	d.waitRun(tok, slow, "running", 60*time.Second)
	p.WaitFor("the slow agent's container to run", 60*time.Second, func() bool {
		st := d.containers(slow)
		return len(st) > 0 && st[0] == "running"
	})
	p.Goto(d.URL + "/ui/runs/" + slow)
	p.WaitText(".facts", "running", 5*time.Second)
	p.Screenshots("run-running")
	p.ClickAndWait(`form[action$="/cancel"] button[type=submit]`)
	cancelled := d.waitRun(tok, slow, "completed", 30*time.Second)
	if cancelled.Conclusion != "cancelled" {
		t.Errorf("the slow run concluded %s after Cancel, want cancelled", cancelled.Conclusion)
	}
	p.WaitFor("the slow agent's container to go", 30*time.Second, func() bool { return len(d.containers(slow)) == 0 })
	p.Goto(d.URL + "/ui/runs/" + slow)
	p.WaitText(".facts", "cancelled", 5*time.Second)
	p.Screenshots("run-cancelled")

	// Re-run the cancelled run: it runs again, on the same commit, under whichever run id the
	// server redirects to.
	p.ClickAndWait(`form[action$="/rerun"] button[type=submit]`)
	m := runPath.FindStringSubmatch(p.URL())
	if m == nil {
		t.Fatalf("Re-run led to %s, want a run page", p.URL())
	}
	again := m[1]
	d.track(again)
	p.WaitFor("the re-run to be queued or running", 30*time.Second, func() bool {
		s := p.Text(".facts")
		return strings.Contains(s, "queued") || strings.Contains(s, "running") || strings.Contains(s, "waiting")
	})
	if r := d.waitRun(tok, again, "running", 60*time.Second); r.SHA != cancelled.SHA {
		t.Errorf("the re-run is of commit %s, want %s", r.SHA, cancelled.SHA)
	}
	p.WaitFor("the re-run's container to run", 60*time.Second, func() bool {
		st := d.containers(again)
		return len(st) > 0 && st[0] == "running"
	})
	p.Screenshots("run-rerun")
	d.cancel(tok, again)

	// The morning review shows the night's finished runs, the hostile report inert there too.
	p.Goto(d.URL + "/ui/review")
	p.WaitText("h1", "Review", 5*time.Second)
	if body := p.Text("main"); !strings.Contains(body, "report") {
		t.Errorf("the review does not list the report run; it shows:\n%s", body)
	}
	inert(t, p, "review page", "") // its summary may leave the report's body out
	p.Screenshots("review")

	d.waitRun(tok, again, "completed", 30*time.Second)
	p.WaitFor("the re-run's container to go", 30*time.Second, func() bool { return len(d.containers(again)) == 0 })
}
