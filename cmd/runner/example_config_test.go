package main

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/daemon"
)

const exampleConfig = "../../examples/runner.yaml"

// documentedDefaults reads the "default: X" comments of examples/runner.yaml, keyed by the
// flag of their key: a top-level key is its flag, a key under github: or secrets: is
// <section>-<key>.
func documentedDefaults(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keyLine := regexp.MustCompile(`^(\s*)([a-z][a-z-]*):`)
	def := regexp.MustCompile(`#.*\bdefault: ([^\s;)]+)`)
	out := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		k := keyLine.FindStringSubmatch(line)
		if k == nil {
			continue
		}
		flag := k[2]
		if k[1] == "" {
			section = k[2]
		} else {
			flag = section + "-" + k[2]
		}
		if d := def.FindStringSubmatch(line); d != nil {
			out[flag] = d[1]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Every default examples/runner.yaml states is the flag's real default.
func TestExampleConfigStatesTheRealDefaults(t *testing.T) {
	docs := documentedDefaults(t)
	// The keys whose default is a fixed value; the computed ones (data-dir, id, secrets.dir,
	// git-base-url) say theirs in words.
	for _, key := range []string{"listen", "log-format", "log-level", "max-agents", "max-runs", "max-runs-per-repo",
		"run-attempts", "lease-ttl", "shutdown-grace", "schedules", "reporters"} {
		if _, ok := docs[key]; !ok {
			t.Errorf("%s: examples/runner.yaml does not state its default (a comment with \"default: X\")", key)
		}
	}
	flags := newServeCmd(&streams{Out: io.Discard, Err: io.Discard}).Flags()
	for key, doc := range docs {
		f := flags.Lookup(key)
		if f == nil {
			t.Errorf("%s: examples/runner.yaml documents a default for a key that is no flag", key)
			continue
		}
		if !sameValue(doc, f.DefValue) {
			t.Errorf("%s: examples/runner.yaml says the default is %s, the flag's is %s", key, doc, f.DefValue)
		}
	}
}

// sameValue compares a documented and a real default, durations by their length (5m = 5m0s).
func sameValue(doc, real string) bool {
	if a, err := time.ParseDuration(doc); err == nil {
		b, err := time.ParseDuration(real)
		return err == nil && a == b
	}
	return doc == real
}

// examples/runner.yaml, with its placeholders filled, passes every check `runner serve` makes
// before it opens the store and the engine: settings, logger, secret env, repositories, GitHub.
func TestExampleConfigStartsWithItsPlaceholdersFilled(t *testing.T) {
	raw, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	etc, data, git := filepath.Join(dir, "etc"), filepath.Join(dir, "data"), filepath.Join(dir, "git")
	for _, d := range []string{filepath.Join(etc, "secrets"), data, filepath.Join(git, "local-only.git")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(filepath.Join(etc, "app.pem"), pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "webhook-secret"), []byte("s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	filled := strings.NewReplacer("/etc/agentrunner", etc, "/var/lib/agentrunner", data, "/srv/git", git).Replace(string(raw))
	cfgPath := filepath.Join(dir, "runner.yaml")
	if err := os.WriteFile(cfgPath, []byte(filled), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ANTHROPIC_API_KEY", "sk-ant-test")

	cmd := newServeCmd(&streams{Out: io.Discard, Err: io.Discard})
	if err := cmd.ParseFlags([]string{"--config", cfgPath}); err != nil {
		t.Fatal(err)
	}
	o := &serveOptions{}
	o.Config = cfgPath
	c, err := o.settings(cmd.Flags())
	if err != nil {
		t.Fatalf("settings: %v", err)
	}
	if c.DataDir != data || c.Secrets.Dir != filepath.Join(etc, "secrets") {
		t.Errorf("data-dir %s, secrets.dir %s: the placeholders were not used", c.DataDir, c.Secrets.Dir)
	}
	if _, err := newLogger(io.Discard, c.LogFormat, c.LogLevel); err != nil {
		t.Error(err)
	}
	if env, err := secretEnv(c.Secrets.Env); err != nil || env["ANTHROPIC_API_KEY"] != "sk-ant-test" {
		t.Errorf("secret env = %v, %v", env, err)
	}
	if _, err := daemon.NewRepos(c.Repos); err != nil {
		t.Error(err)
	}
	gh, secret, err := githubClient(t.Context(), c, slog.New(slog.DiscardHandler))
	if err != nil || gh == nil || !gh.IsApp() || secret != "s3cr3t" {
		t.Errorf("github: client %v, secret %q, err %v; want the App and the webhook secret", gh, secret, err)
	}
}
