package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/store"
)

// What Chromium sends on the control room's own form posts: the page's Referrer-Policy
// no-referrer makes its Origin "null", and Sec-Fetch-Site says same-origin. Those posts sign
// in and cancel; a null Origin from anywhere else, or a cross-site one, is still refused.
func TestSameOriginFormPostWithNullOrigin(t *testing.T) {
	srv, st, ctl := setup(t)
	plain, err := st.CreateToken(t.Context(), store.Token{Name: "ops", Scope: store.ScopeDispatch})
	if err != nil {
		t.Fatal(err)
	}
	chromium := map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}
	login := func(hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/ui/login", strings.NewReader(url.Values{"token": {plain}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	for _, tc := range []struct {
		name string
		hdr  map[string]string
	}{
		{"Origin null, no Sec-Fetch-Site", map[string]string{"Origin": "null"}},
		{"Origin null, cross-site", map[string]string{"Origin": "null", "Sec-Fetch-Site": "cross-site"}},
		{"Origin null, same-site", map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-site"}},
		{"another origin", map[string]string{"Origin": "https://evil.example"}},
	} {
		if res := login(tc.hdr); res.StatusCode != http.StatusForbidden {
			t.Errorf("login with %s: %s, want 403", tc.name, res.Status)
		}
	}
	res := login(chromium)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login as Chromium sends it: %s, want 303", res.Status)
	}
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == CookieName {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("login set no session cookie")
	}
	csrf := session{id: cookie.Value}.csrfToken()

	cancel := func(hdr map[string]string, token string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/ui/runs/r1/cancel", strings.NewReader(url.Values{"csrf": {token}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(cookie)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := cancel(map[string]string{"Origin": "null"}, csrf); got != http.StatusForbidden {
		t.Errorf("cancel with Origin null and no Sec-Fetch-Site: %d, want 403", got)
	}
	if got := cancel(chromium, "wrong"); got != http.StatusForbidden {
		t.Errorf("same-origin cancel with a wrong CSRF token: %d, want 403", got)
	}
	if len(ctl.cancelled) != 0 {
		t.Fatalf("refused posts cancelled %v", ctl.cancelled)
	}
	if got := cancel(chromium, csrf); got != http.StatusSeeOther || len(ctl.cancelled) != 1 {
		t.Fatalf("cancel as Chromium sends it: %d, cancelled %v; want 303 and r1 cancelled", got, ctl.cancelled)
	}
}

// Browsers ask every page's site for /favicon.ico; it is the UI's icon, not a 404 in the console.
func TestFaviconIsServed(t *testing.T) {
	srv, _, _ := setup(t)
	res, err := http.Get(srv.URL + "/favicon.ico")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "image/svg+xml" {
		t.Fatalf("/favicon.ico: %s %s, want 200 image/svg+xml", res.Status, res.Header.Get("Content-Type"))
	}
}
