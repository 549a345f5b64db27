package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
)

// `runner token` says which store it writes to and which setting chose it, so a token created
// without the daemon's --config does not vanish silently into another store.
func TestTokenCommandsNameTheirStore(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AGENTRUNNER_CONFIG", "")
	t.Setenv("AGENTRUNNER_DATA_DIR", "")
	t.Setenv("AGENTRUNNER_DATABASE", "")
	code, out, errOut := runCLI(t, "token", "create", "ci", "--data-dir", dir)
	if code != 0 || strings.TrimSpace(out) == "" {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	if want := "store: sqlite " + filepath.Join(dir, "runner.db") + " (--data-dir)"; !strings.Contains(errOut, want) {
		t.Errorf("stderr = %q, want %q", errOut, want)
	}
	cfg := filepath.Join(dir, "runner.yaml")
	if err := os.WriteFile(cfg, []byte("data-dir: "+dir+"/d2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "token", "revoke", "ci", "--config", cfg)
	if code == 0 || !strings.Contains(errOut, "store: sqlite "+filepath.Join(dir, "d2", "runner.db")+" (config "+cfg+")") {
		t.Errorf("exit %d, stderr %q: want the config's store named (and no token there)", code, errOut)
	}
	if got := describeStore("postgres://runner:hunter2@db:5432/ar"); got != "postgres postgres://runner:xxxxx@db:5432/ar" {
		t.Errorf("describeStore = %q, want the password hidden", got)
	}
}

// tokenEnv clears the settings that choose a store, so only --data-dir does.
func tokenEnv(t *testing.T) string {
	t.Setenv("AGENTRUNNER_CONFIG", "")
	t.Setenv("AGENTRUNNER_DATA_DIR", "")
	t.Setenv("AGENTRUNNER_DATABASE", "")
	return t.TempDir()
}

// create with a scope and an expiry, list (text and JSON, never a hash or a plaintext),
// revoke; the created tokens authenticate with the scope and expiry asked for.
func TestTokenCreateListRevoke(t *testing.T) {
	dir := tokenEnv(t)
	date := time.Now().AddDate(1, 0, 0).Format(time.DateOnly)
	at, _ := time.Parse(time.DateOnly, date)
	shown := at.Local().Format(time.DateOnly) // 00:00 UTC that day, in this machine's time zone
	plains := map[string]string{}
	for _, tc := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"ci", nil, "token ci: scope dispatch, expires never"},
		{"dash", []string{"--scope", "read", "--expires", "30d"}, "token dash: scope read, expires " + time.Now().AddDate(0, 0, 30).Local().Format(time.DateOnly)},
		{"ops", []string{"--scope=admin", "--expires", date}, "token ops: scope admin, expires " + shown},
	} {
		code, out, errOut := runCLI(t, append([]string{"token", "create", tc.name, "--data-dir", dir}, tc.args...)...)
		if code != 0 || !strings.HasPrefix(out, "art_") || !strings.Contains(errOut, tc.stderr) {
			t.Fatalf("create %s: exit %d, stdout %q, stderr %q; want the token on stdout and %q", tc.name, code, out, errOut, tc.stderr)
		}
		plains[tc.name] = strings.TrimSpace(out)
	}
	st, err := store.Open(t.Context(), filepath.Join(dir, "runner.db"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]store.Scope{"ci": store.ScopeDispatch, "dash": store.ScopeRead, "ops": store.ScopeAdmin} {
		tok, err := st.CheckToken(t.Context(), plains[name])
		if err != nil || tok.Scope != want {
			t.Errorf("token %s: %+v, %v; want scope %s", name, tok, err, want)
		}
	}
	if tok, _ := st.CheckToken(t.Context(), plains["dash"]); tok.ExpiresAt.Sub(time.Now().AddDate(0, 0, 30)).Abs() > time.Minute {
		t.Errorf("30d token expires at %v", tok.ExpiresAt)
	}
	if tok, _ := st.CheckToken(t.Context(), plains["ops"]); tok.ExpiresAt.Format(time.RFC3339) != date+"T00:00:00Z" {
		t.Errorf("the token expiring on %s expires at %v, want 00:00 UTC that day", date, tok.ExpiresAt)
	}
	st.Close()

	code, out, errOut := runCLI(t, "token", "list", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "LAST USED") {
		t.Fatalf("list:\n%s", out)
	}
	for i, want := range [][]string{{"ci", "dispatch", "never"}, {"dash", "read"}, {"ops", "admin", shown}} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("list line %q lacks %q", lines[i+1], w)
			}
		}
	}
	// Each token was used once above, so each has a last use now.
	if strings.Count(out, "never") != 1 {
		t.Errorf("list: want one never (ci's expiry) and a last use for each token:\n%s", out)
	}

	code, out, _ = runCLI(t, "token", "list", "--json", "--data-dir", dir)
	var views []TokenView
	if err := json.Unmarshal([]byte(out), &views); code != 0 || err != nil || len(views) != 3 {
		t.Fatalf("list --json: exit %d, %v:\n%s", code, err, out)
	}
	if views[1].Name != "dash" || views[1].Scope != store.ScopeRead || views[1].ExpiresAt.IsZero() || views[1].Expired || views[1].LastUsedAt.IsZero() {
		t.Errorf("dash = %+v", views[1])
	}
	if strings.Contains(out, "hash") || strings.Contains(out, "art_") || !strings.Contains(out, `"expires_at"`) {
		t.Errorf("list --json shows a hash or a token, or no expiry:\n%s", out)
	}

	if code, _, errOut := runCLI(t, "token", "revoke", "dash", "--data-dir", dir); code != 0 || !strings.Contains(errOut, "token dash revoked") {
		t.Fatalf("revoke: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "token", "revoke", "dash", "--data-dir", dir); code != 1 || !strings.Contains(errOut, `no token named "dash"`) {
		t.Fatalf("revoke again: exit %d: %s", code, errOut)
	}
	if _, out, _ := runCLI(t, "token", "list", "--data-dir", dir); strings.Contains(out, "dash") {
		t.Errorf("a revoked token is listed:\n%s", out)
	}
}

// Bad --scope and --expires values are usage errors that say the valid forms, and create
// nothing.
func TestTokenCreateRejectsBadScopeAndExpiry(t *testing.T) {
	dir := tokenEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--scope", "write"}, `--scope: unknown token scope "write" (want read, dispatch or admin)`},
		{[]string{"--expires", "soon"}, `--expires: "soon": want a duration (30d, 720h, 90m) or a date (2027-01-31`},
		{[]string{"--expires", "-3d"}, `want a duration (30d, 720h, 90m)`},
		{[]string{"--expires", "-5h"}, `"-5h" is not positive`},
		{[]string{"--expires", "2001-01-31"}, `"2001-01-31" is already past`},
	} {
		code, out, errOut := runCLI(t, append([]string{"token", "create", "x", "--data-dir", dir}, tc.args...)...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("create %v: exit %d, stdout %q, stderr %q; want exit 2 with %q", tc.args, code, out, errOut, tc.want)
		}
	}
	if _, out, _ := runCLI(t, "token", "list", "--json", "--data-dir", dir); strings.TrimSpace(out) != "[]" {
		t.Errorf("tokens after bad creates: %s", out)
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"30d", now.AddDate(0, 0, 30)},
		{"720h", now.Add(720 * time.Hour)},
		{"90m", now.Add(90 * time.Minute)},
		{"2027-01-31", time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)},
		{"2027-01-31T12:00:00+02:00", time.Date(2027, 1, 31, 10, 0, 0, 0, time.UTC)},
	} {
		got, err := parseExpiry(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseExpiry(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"0d", "1.5d", "d", "0s", "2026-12-05", "2026-12-05T10:30:00Z", "31/01/2027", "tomorrow"} {
		if got, err := parseExpiry(bad, now); err == nil {
			t.Errorf("parseExpiry(%q) = %v, want an error", bad, got)
		}
	}
}

// A read token made by `runner token create` lists runs through the daemon's API, and
// `runner dispatch` with it fails saying which scope it needs and how to get it.
func TestReadTokenReadsButCannotDispatch(t *testing.T) {
	dir := tokenEnv(t)
	code, out, errOut := runCLI(t, "token", "create", "dash", "--scope", "read", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errOut)
	}
	tok := strings.TrimSpace(out)
	st, err := store.Open(t.Context(), filepath.Join(dir, "runner.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	mux := http.NewServeMux()
	(&server.API{Store: st, Dispatcher: refusingDispatcher{t}}).Register(mux)
	hs := httptest.NewServer(mux)
	defer hs.Close()
	if code, _, errOut := runCLI(t, "runs", "--server", hs.URL, "--token", tok); code != 0 {
		t.Errorf("runs with a read token: exit %d: %s", code, errOut)
	}
	code, _, errOut = runCLI(t, "dispatch", "acme/app", "nightly", "--server", hs.URL, "--token", tok)
	if code != exitFailure || !strings.Contains(errOut, "needs scope dispatch") || !strings.Contains(errOut, "runner token create NAME --scope dispatch") ||
		!strings.Contains(errOut, "HTTP 403") {
		t.Errorf("dispatch with a read token: exit %d, stderr %q; want a 403 naming the scope and how to get it", code, errOut)
	}
	for _, args := range [][]string{{"cancel", "r1"}, {"rerun", "r1"}, {"cancel", "r1", "a"}} {
		verb := strings.Join(args, " ")
		code, _, errOut = runCLI(t, append(args, "--server", hs.URL, "--token", tok)...)
		if code != exitFailure || !strings.Contains(errOut, "needs scope dispatch") || !strings.Contains(errOut, "HTTP 403") {
			t.Errorf("%s with a read token: exit %d, stderr %q; want a 403 naming the scope", verb, code, errOut)
		}
	}
}

// refusingDispatcher fails the test if a request reaches it.
type refusingDispatcher struct{ t *testing.T }

func (d refusingDispatcher) Dispatch(context.Context, string, string, map[string]string) (*daemon.DispatchResult, error) {
	d.t.Error("a dispatch got past the scope check")
	return nil, errors.New("refused")
}

func (d refusingDispatcher) Cancel(context.Context, string, string) (*daemon.CancelResult, error) {
	d.t.Error("a cancel got past the scope check")
	return nil, errors.New("refused")
}

func (d refusingDispatcher) Rerun(context.Context, string) (*daemon.RerunResult, error) {
	d.t.Error("a rerun got past the scope check")
	return nil, errors.New("refused")
}

func (d refusingDispatcher) CancelJob(context.Context, string, string, string) (*daemon.CancelJobResult, error) {
	d.t.Error("a job cancel got past the scope check")
	return nil, errors.New("refused")
}

func (d refusingDispatcher) Hook(context.Context, string, string, []byte, string, string) (*daemon.DispatchResult, error) {
	d.t.Error("a hook reached the dispatcher")
	return nil, errors.New("refused")
}
