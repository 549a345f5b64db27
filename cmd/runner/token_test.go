package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
