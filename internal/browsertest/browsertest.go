// Package browsertest drives a headless Chromium from Go tests (through chromedp), the way a
// person uses the control room: it loads pages, fills forms, clicks, waits for text, and keeps
// screenshots at a desktop and a phone width. It fails the test on anything the page says went
// wrong: a console error, an uncaught exception, a resource the page could not load, a
// Content-Security-Policy violation (the browser log), or a dialog nobody expected.
//
// Chromium is required, never optional: a missing browser fails the test with how to install
// it (Debian: `apt-get install chromium`); AGENTRUNNER_CHROMIUM names another executable.
//
// Typical use:
//
//	p := browsertest.New(t)
//	p.Goto(base + "/ui/login")
//	p.SetValue("#token", tok)
//	p.ClickAndWait(`button[type=submit]`)
//	p.WaitText("h1", "Runs")
//	p.Screenshots("runs")
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// EnvChromium names the Chromium executable to use instead of looking for one on PATH.
const EnvChromium = "AGENTRUNNER_CHROMIUM"

// EnvArtifacts is the directory screenshots are written to (default: the module's
// artifacts/screenshots, which git ignores).
const EnvArtifacts = "AGENTRUNNER_ARTIFACTS"

// Desktop and Phone are the two viewports every page is checked and photographed at.
var (
	Desktop = Viewport{1280, 800, false}
	Phone   = Viewport{390, 844, true}
)

// Viewport is a window size; Mobile makes the page honour its meta viewport as a phone does.
type Viewport struct {
	Width, Height int64
	Mobile        bool
}

// DefaultTimeout bounds one test's browser: everything it does must finish in this time.
const DefaultTimeout = 3 * time.Minute

// Chromium returns the path of the Chromium executable: $AGENTRUNNER_CHROMIUM, else the first
// of chromium, chromium-browser, google-chrome, google-chrome-stable on PATH.
func Chromium() (string, error) {
	if p := os.Getenv(EnvChromium); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvChromium, p, err)
		}
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no Chromium found on PATH (looked for chromium, chromium-browser, google-chrome, google-chrome-stable). " +
		"The browser tests need it: install it with `apt-get install chromium` (Debian/Ubuntu), " +
		"or set " + EnvChromium + " to a Chromium or Chrome executable")
}

// Page is one browser tab of one test: its own Chromium process and profile, so cookies and
// storage never leak between tests. All methods fail the test on error.
type Page struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string // what the page reported going wrong, in order
	dialogs  []string
	// AcceptDialogs answers confirm() and alert() with OK instead of failing the test (for a
	// page that asks before a destructive action).
	acceptDialogs bool
}

// New starts a headless Chromium for t with a fresh profile and returns its tab, bounded by
// DefaultTimeout. At the end of the test it stops the browser, removes the profile and fails
// the test if any page raised an error or opened a dialog it did not allow.
func New(t *testing.T) *Page { return NewWithTimeout(t, DefaultTimeout) }

// NewWithTimeout is New with another bound on the whole browser session.
func NewWithTimeout(t *testing.T, timeout time.Duration) *Page {
	t.Helper()
	exe, err := Chromium()
	if err != nil {
		t.Fatal(err)
	}
	profile, err := os.MkdirTemp("", "agentrunner-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(int(Desktop.Width), int(Desktop.Height)),
	)
	// Chromium refuses to start its sandbox as root; as any other user the sandbox stays on.
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	base, cancelTimeout := context.WithTimeout(context.Background(), timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	p := &Page{t: t}
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(p.listen))
	p.ctx = ctx
	t.Cleanup(func() {
		// Cancel waits for the browser process to exit, so the profile is no longer written.
		_ = chromedp.Cancel(ctx)
		cancelTab()
		cancelAlloc()
		cancelTimeout()
		if err := os.RemoveAll(profile); err != nil {
			t.Errorf("remove the browser profile %s: %v", profile, err)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.problems) > 0 {
			t.Errorf("the pages reported %d problem(s):\n  %s", len(p.problems), strings.Join(p.problems, "\n  "))
		}
		if len(p.dialogs) > 0 && !p.acceptDialogs {
			t.Errorf("the pages opened %d dialog(s) nobody expected: %q", len(p.dialogs), p.dialogs)
		}
	})
	// Start the browser now, so a browser that cannot start fails here with its reason.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", exe, err)
	}
	return p
}

// listen runs in the tab's event loop: it only records, and answers dialogs from another
// goroutine (a dialog blocks the page, and the loop must not send commands).
func (p *Page) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				if len(a.Value) > 0 {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			p.problem("console.%s: %s", ev.Type, strings.Join(args, " "))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		p.problem("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, text)
	case *log.EventEntryAdded:
		// Failed loads ("network"), CSP violations ("security"), and the like.
		if ev.Entry.Level == log.EntryLevelError {
			p.problem("browser log (%s) %s: %s", ev.Entry.Source, ev.Entry.URL, ev.Entry.Text)
		}
	case *page.EventJavascriptDialogOpening:
		p.mu.Lock()
		p.dialogs = append(p.dialogs, string(ev.Type)+": "+ev.Message)
		accept := p.acceptDialogs
		p.mu.Unlock()
		go func() {
			_, _ = chromedp.Call(p.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: accept})
		}()
	}
}

func (p *Page) problem(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
}

// Context is the tab's chromedp context, for actions this package has no helper for.
func (p *Page) Context() context.Context { return p.ctx }

// AllowDialogs makes the page accept confirm() and alert() instead of failing the test.
func (p *Page) AllowDialogs() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.acceptDialogs = true
}

// TakeProblems returns what the pages reported going wrong so far and forgets it, for a test
// that provokes an error on purpose; whatever is not taken fails the test at its end.
func (p *Page) TakeProblems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	got := p.problems
	p.problems = nil
	return got
}

// TakeDialogs returns the dialogs the pages opened so far ("alert: message") and forgets them.
func (p *Page) TakeDialogs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	got := p.dialogs
	p.dialogs = nil
	return got
}

// Do runs chromedp actions in the tab, failing the test on error.
func (p *Page) Do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.t.Fatalf("browser at %s: %v", p.url(), err)
	}
}

// Eval evaluates a JavaScript expression in the page and decodes its value into T.
func Eval[T any](p *Page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("browser at %s: evaluate %s: %v", p.url(), expr, err)
	}
	return v
}

// url is the tab's location, for error messages ("" when it cannot be read).
func (p *Page) url() string {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	u, _ := chromedp.Run(ctx, chromedp.Location())
	return u
}

// URL returns the tab's location.
func (p *Page) URL() string {
	p.t.Helper()
	u, err := chromedp.Run(p.ctx, chromedp.Location())
	if err != nil {
		p.t.Fatalf("read the location: %v", err)
	}
	return u
}

// Goto loads url and waits until its body is there. It fails the test when the server
// answered with an error status.
func (p *Page) Goto(url string) {
	p.t.Helper()
	resp, err := chromedp.Run(p.ctx, chromedp.NavigateResponse(url))
	if err != nil {
		p.t.Fatalf("load %s: %v", url, err)
	}
	if resp != nil && resp.Status >= 400 {
		p.t.Fatalf("load %s: HTTP %d %s", url, resp.Status, resp.StatusText)
	}
	p.Do(chromedp.WaitReady(chromedp.CSS("body")))
}

// SetValue types value into the form field sel (a CSS selector).
func (p *Page) SetValue(sel, value string) {
	p.t.Helper()
	p.Do(chromedp.SetValue(chromedp.CSS(sel), value))
}

// ClickAndWait clicks sel (a CSS selector) and waits for the page it leads to (a link or a
// form's submit button), failing the test when the server answered with an error status.
func (p *Page) ClickAndWait(sel string) {
	p.t.Helper()
	resp, err := chromedp.RunResponse(p.ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		p.t.Fatalf("click %s at %s: %v", sel, p.url(), err)
	}
	if resp != nil && resp.Status >= 400 {
		p.t.Fatalf("click %s: the server answered HTTP %d %s at %s", sel, resp.Status, resp.StatusText, resp.URL)
	}
	p.Do(chromedp.WaitReady(chromedp.CSS("body")))
}

// Text returns the rendered text of the first element matching sel ("" when none does).
func (p *Page) Text(sel string) string {
	p.t.Helper()
	return Eval[string](p, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel))
}

// WaitText waits until the first element matching sel shows text containing want, without
// reloading the page (what a person sees a live page do), and fails the test after within.
func (p *Page) WaitText(sel, want string, within time.Duration) {
	p.t.Helper()
	p.WaitFor(fmt.Sprintf("%s to show %q", sel, want), within, func() bool {
		return strings.Contains(p.Text(sel), want)
	})
}

// WaitFor polls cond every 100 ms until it holds, failing the test with what after within.
func (p *Page) WaitFor(what string, within time.Duration, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			p.t.Fatalf("waited %v for %s at %s; the page shows:\n%s", within, what, p.url(), p.Text("body"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Count returns how many elements match sel.
func (p *Page) Count(sel string) int {
	p.t.Helper()
	return Eval[int](p, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

// Screenshots photographs the whole page at Desktop and Phone widths into ArtifactsDir, as
// <test>-<name>-<width>.png, and leaves the tab at the Desktop size. Any problem the page
// reported at either width fails the test at its end.
func (p *Page) Screenshots(name string) {
	p.t.Helper()
	for _, v := range []Viewport{Phone, Desktop} {
		p.Screenshot(name, v)
	}
}

// Screenshot photographs the whole page at viewport v; the tab keeps that size. A page wider
// than v is a problem that fails the test at its end.
func (p *Page) Screenshot(name string, v Viewport) {
	p.t.Helper()
	var opts []chromedp.EmulateViewportOption
	if v.Mobile {
		opts = append(opts, chromedp.EmulateMobile)
	}
	p.Do(chromedp.EmulateViewport(v.Width, v.Height, opts...))
	// A page wider than the screen makes a phone scroll sideways to read it: a layout bug.
	if w := Eval[int](p, `document.documentElement.scrollWidth`); w > int(v.Width) {
		p.problem("%s at %s is %d px wide in a %d px window: it scrolls sideways", name, p.url(), w, v.Width)
	}
	buf, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot %s at %dpx: %v", name, v.Width, err)
	}
	dir := ArtifactsDir(p.t)
	file := filepath.Join(dir, fmt.Sprintf("%s-%s-%d.png", fileName(p.t.Name()), fileName(name), v.Width))
	if err := os.WriteFile(file, buf, 0o644); err != nil {
		p.t.Fatalf("keep the screenshot: %v", err)
	}
}

// ArtifactsDir is where screenshots go: $AGENTRUNNER_ARTIFACTS, else artifacts/screenshots at
// the root of the module the test runs in. It is created when missing.
func ArtifactsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvArtifacts)
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			t.Fatalf("find where to keep screenshots (set %s): %v", EnvArtifacts, err)
		}
		dir = filepath.Join(root, "artifacts", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create the artifacts directory: %v", err)
	}
	return dir
}

// moduleRoot is the nearest directory above the working directory (a test's package) that
// holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = up
	}
}

// fileName keeps a name to letters, digits, '-' and '_', so test and page names make safe files.
func fileName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}
