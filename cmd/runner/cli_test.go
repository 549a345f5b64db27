package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMaxAgentsBelowOneIsRefused(t *testing.T) {
	for _, n := range []string{"0", "-3"} {
		code, _, errOut := runCLI(t, "exec", "--max-agents", n, "--dry-run")
		if code != exitUsage || !strings.Contains(errOut, "--max-agents "+n+": at least one agent") {
			t.Errorf("--max-agents %s: exit %d, stderr %q; want exit 2 saying why", n, code, errOut)
		}
	}
}

func TestVersionFlagAndCommandAgree(t *testing.T) {
	code, flag, _ := runCLI(t, "--version")
	_, cmd, _ := runCLI(t, "version")
	if code != 0 || flag != cmd || flag != "runner "+version+"\n" {
		t.Errorf("--version: exit %d, %q; version: %q", code, flag, cmd)
	}
}

func TestRunsRefusesAStatusThatIsAConclusion(t *testing.T) {
	code, out, errOut := runCLI(t, "runs", "--status", "failed", "--token", "x", "--server", "http://127.0.0.1:1")
	if code != exitUsage || out != "" || !strings.Contains(errOut, "queued, waiting, running, completed") || !strings.Contains(errOut, "CONCLUSION") {
		t.Errorf("runs --status failed: exit %d, stdout %q, stderr %q; want exit 2 naming the valid values", code, out, errOut)
	}
}

// A run still going when --timeout passes is not a failed run: dispatch says so with exit 3.
func TestDispatchWaitTimeoutHasItsOwnExitCode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(map[string]string{"run_id": "r1", "sha": "abc", "branch": "main"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"id": "r1", "status": "running"})
	}))
	defer srv.Close()
	code, out, errOut := runCLI(t, "dispatch", "o/r", "nightly", "--server", srv.URL, "--token", "x", "--wait", "--timeout", "300ms")
	if code != exitTimeout || strings.TrimSpace(out) != "r1" || !strings.Contains(errOut, "still running after --timeout") {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and the run id", code, out, errOut, exitTimeout)
	}
	if code, help, _ := runCLI(t, "dispatch", "--help"); code != 0 || !strings.Contains(help, "3 when --timeout passed") {
		t.Errorf("dispatch --help does not document exit 3:\n%s", help)
	}
}

func TestValidateCountsInGoodEnglish(t *testing.T) {
	repo := gitRepo(t, map[string]string{".agents/a.yaml": "on: push\ndefaults: {image: i}\nagents:\n  a: {command: [x]}\n"})
	code, out, errOut := runCLI(t, "validate", repo+"/.agents")
	if code != 0 || !strings.Contains(out, "1 routine, 1 agent OK") {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 routine, 1 agent", code, out, errOut)
	}
}
