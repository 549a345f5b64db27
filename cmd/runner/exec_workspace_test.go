package main

import (
	"os"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/egress"
	"github.com/agentrunner/agentrunner/internal/dockertest"
)

// `runner exec --workspace auto` takes overlay workspaces where it can check that the engine
// mounts them, which needs its own executable static (it runs inside the probe's container);
// where it cannot, it makes full checkouts and says why, once in the log and in the summary of
// every run. The test binary is static or not as it was built (`make test` runs both).
func TestExecSaysWhyWorkspacesAreFullCheckouts(t *testing.T) {
	dockertest.Client(t)
	dockertest.TestAgentImage(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	repo := gitRepo(t, map[string]string{
		".agents/a.yaml": "on: push\ndefaults: {image: agentrunner/testagent:dev, timeout: 1m}\nagents:\n  a: {command: [\"/testagent\", \"write\", \"x=1\"], changes: keep}\n",
		".agents/b.yaml": "on: push\ndefaults: {image: agentrunner/testagent:dev, timeout: 1m}\nagents:\n  b: {command: [\"/testagent\", \"print\", \"hi\"]}\n",
	})
	chdir(t, repo)
	code, out, errOut := runCLI(t, "exec", "--workspace", "auto", "--progress", "plain")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	exe, _ := os.Executable()
	const why = "workspaces are full checkouts (slower on large repositories), because the Docker engine cannot mount overlay workspaces"
	if egress.CheckStatic(exe) == nil {
		if strings.Contains(out+errOut, why) {
			t.Errorf("a static runner on this engine fell back to full checkouts:\n%s\n%s", out, errOut)
		}
		return
	}
	if n := strings.Count(errOut, why); n != 1 || !strings.Contains(errOut, "CGO_ENABLED=0") {
		t.Errorf("the log says why %d times, want once with the fix:\n%s", n, errOut)
	}
	if n := strings.Count(out, "note: "+why); n != 2 {
		t.Errorf("the summaries say why %d times, want once per run (2):\n%s", n, out)
	}
	code, _, errOut = runCLI(t, "exec", "--workspace", "overlay", "--progress", "plain", "a")
	if code != 1 || !strings.Contains(errOut, "workspace mode overlay: the Docker engine cannot mount overlay workspaces") ||
		!strings.Contains(errOut, "use workspace mode checkout") {
		t.Errorf("overlay forced where it cannot be: exit %d, stderr:\n%s", code, errOut)
	}
}
