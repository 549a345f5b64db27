package browsertest

import (
	"bytes"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const csp = "default-src 'none'; script-src 'self'; style-src 'self'; form-action 'self'"

// site is a small site with the control room's Content-Security-Policy: a page whose script
// fills in text late, pages that go wrong in each way the harness must notice, and a form.
func site(t *testing.T) string {
	mux := http.NewServeMux()
	page := func(path, body string) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", csp)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>t</title></head><body>%s</body></html>`, body)
		})
	}
	script := func(path, js string) {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write([]byte(js))
		})
	}
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	page("/late", `<p id="msg">waiting</p><script src="/late.js"></script>`)
	script("/late.js", `setTimeout(function () { document.getElementById("msg").textContent = "arrived"; }, 300);`)
	page("/console", `<script src="/console.js"></script>`)
	script("/console.js", `console.error("boom from the page");`)
	page("/throw", `<script src="/throw.js"></script>`)
	script("/throw.js", `throw new Error("uncaught on purpose");`)
	page("/inline", `<script>document.title = "ran";</script>`)
	page("/missing", `<script src="/nothing-here.js"></script>`)
	page("/alert", `<script src="/alert.js"></script>`)
	script("/alert.js", `alert("hello");`)
	page("/wide", `<link rel="stylesheet" href="/wide.css"><div class="wide">wide</div>`) // 600 px and the body's 8 px margin
	mux.HandleFunc("GET /wide.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		_, _ = w.Write([]byte(".wide { width: 600px; }"))
	})
	page("/form", `<form method="post" action="/submit"><input id="name" name="name"><button type="submit">Send</button></form>`)
	mux.HandleFunc("POST /submit", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/thanks?name="+r.PostFormValue("name"), http.StatusSeeOther)
	})
	page("/thanks", `<h1>Thanks</h1>`)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// A page that behaves raises nothing; waiting sees text a script writes later; a form posts
// and lands on the redirect; screenshots are real PNGs of both widths, named after the test.
func TestPageDrivesAWellBehavedSite(t *testing.T) {
	t.Setenv(EnvArtifacts, t.TempDir())
	base := site(t)
	p := New(t)
	p.Goto(base + "/late")
	p.WaitText("#msg", "arrived", 10*time.Second)
	p.Screenshots("late")
	for _, v := range []Viewport{Desktop, Phone} {
		file := filepath.Join(os.Getenv(EnvArtifacts), fmt.Sprintf("TestPageDrivesAWellBehavedSite-late-%d.png", v.Width))
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if w := img.Bounds().Dx(); w != int(v.Width) {
			t.Errorf("%s is %d px wide, want %d", file, w, v.Width)
		}
	}
	if w := Eval[int](p, "window.innerWidth"); w != int(Desktop.Width) {
		t.Errorf("after the screenshots the window is %d px wide, want %d", w, Desktop.Width)
	}
	p.Goto(base + "/form")
	p.SetValue("#name", "ada")
	p.ClickAndWait("button[type=submit]")
	if u := p.URL(); !strings.HasSuffix(u, "/thanks?name=ada") {
		t.Errorf("after the form the page is %s", u)
	}
	if got := p.Text("h1"); got != "Thanks" {
		t.Errorf("h1 = %q", got)
	}
	if got := p.TakeProblems(); len(got) != 0 {
		t.Errorf("a clean site reported %q", got)
	}
}

// Each way a page can go wrong is noticed: console.error, an uncaught exception, an inline
// script the CSP refuses, a script that is not there, a page wider than a phone, and a dialog.
func TestPageNoticesWhatGoesWrong(t *testing.T) {
	base := site(t)
	p := New(t)
	for _, tc := range []struct{ path, want string }{
		{"/console", "boom from the page"},
		{"/throw", "uncaught on purpose"},
		{"/inline", "Content Security Policy"},
		{"/missing", "404"},
	} {
		p.Goto(base + tc.path)
		p.WaitFor("the problem on "+tc.path, 5*time.Second, func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return strings.Contains(strings.Join(p.problems, "\n"), tc.want)
		})
		p.TakeProblems()
	}
	t.Setenv(EnvArtifacts, t.TempDir())
	p.Goto(base + "/wide")
	p.Screenshot("wide", Phone)
	if got := strings.Join(p.TakeProblems(), "\n"); !strings.Contains(got, "608 px wide in a 390 px window") {
		t.Errorf("a page wider than the phone: problems %q", got)
	}
	p.Screenshot("wide", Desktop)
	if got := p.TakeProblems(); len(got) != 0 {
		t.Errorf("a 600 px page at desktop width: problems %q", got)
	}
	p.Goto(base + "/alert")
	p.WaitFor("the alert", 5*time.Second, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.dialogs) > 0
	})
	if got := p.TakeDialogs(); len(got) != 1 || got[0] != "alert: hello" {
		t.Errorf("dialogs = %q", got)
	}
	// The dialog was dismissed: the page answers again.
	if got := Eval[int](p, "1 + 1"); got != 2 {
		t.Errorf("1 + 1 = %d", got)
	}
}

// Without Chromium the tests fail with how to install it, never skip.
func TestChromiumMissingSaysHowToInstall(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(EnvChromium, "")
	_, err := Chromium()
	if err == nil || !strings.Contains(err.Error(), "apt-get install chromium") {
		t.Fatalf("err = %v, want one that says apt-get install chromium", err)
	}
	t.Setenv(EnvChromium, filepath.Join(t.TempDir(), "no-such-chromium"))
	if _, err := Chromium(); err == nil || !strings.Contains(err.Error(), EnvChromium) {
		t.Fatalf("err = %v, want one that names %s", err, EnvChromium)
	}
}
