package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agentrunner/agentrunner/internal/dockertest"
)

// ordinaryUID is the user the test becomes: neither root nor the sandbox's DefaultUser, so a
// runner that still tried to give the workspace to DefaultUser would fail.
const ordinaryUID = 20000

// TestExecRunsInDockerAsAnOrdinaryUser runs `runner exec` the way most people do on their own
// machine: not root, allowed to use Docker through the socket's group. The runner cannot give
// files away then; its agents run as the runner's own user, edit the workspace, and the patch
// is applied to the user's checkout.
func TestExecRunsInDockerAsAnOrdinaryUser(t *testing.T) {
	cli := dockertest.Client(t)
	dockertest.TestAgentImage(t)
	if os.Geteuid() != 0 {
		// The other exec tests already run as this ordinary user.
		t.Skip("becoming another user needs root; the other exec tests run as the current, ordinary user")
	}
	var groups []uint32
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		sock = strings.TrimPrefix(h, "unix://")
	}
	if fi, err := os.Stat(sock); err == nil {
		groups = append(groups, fi.Sys().(*syscall.Stat_t).Gid)
	}

	// Everything the user touches is theirs, below a directory they can reach.
	home, err := os.MkdirTemp("", "exec-as-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(home) })
	if err := os.Chmod(home, 0o755); err != nil {
		t.Fatal(err)
	}
	repo := gitRepo(t, map[string]string{
		"README.md": "old\n",
		".agents/fix.yaml": `on: push
defaults: {image: agentrunner/testagent:dev, timeout: 2m}
agents:
  edit:
    command: ["/testagent", "append", "README.md=more\n", "write", "new.txt=x", "escape"]
    changes: keep
`,
	})
	work := filepath.Join(home, "repo")
	if err := os.Rename(repo, work); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(home, "runner")
	copyExecutable(t, self, bin)
	if err := filepath.Walk(home, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, ordinaryUID, ordinaryUID)
	}); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "exec", "--progress", "plain", "--apply")
	cmd.Dir = work
	cmd.Env = []string{cliEnv + "=1", "HOME=" + home, "PATH=" + os.Getenv("PATH"), "DOCKER_HOST=" + os.Getenv("DOCKER_HOST")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: ordinaryUID, Gid: ordinaryUID, Groups: groups}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("runner exec as uid %d: %v\n%s", ordinaryUID, err, out.String())
	}
	if !strings.Contains(out.String(), "fix: success") {
		t.Fatalf("the run did not succeed:\n%s", out.String())
	}
	runs, _ := filepath.Glob(filepath.Join(work, ".agents", ".runs", "2*"))
	if len(runs) != 1 {
		t.Fatalf("want one run directory, got %v", runs)
	}
	dockertest.AssertNoLeftovers(t, cli, filepath.Base(runs[0]))
	if b, _ := os.ReadFile(filepath.Join(work, "README.md")); string(b) != "old\nmore\n" {
		t.Errorf("README.md = %q, want the agent's edit applied", b)
	}
	fi, err := os.Stat(filepath.Join(work, "new.txt"))
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != ordinaryUID {
		t.Errorf("new.txt should exist and be the user's: %v", err)
	}
	// The agent itself ran as the user, not as root and not as an id nobody owns here.
	log, err := os.ReadFile(filepath.Join(runs[0], "jobs", "edit", "log.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), `"uid":20000`) || !strings.Contains(string(log), `"gid":20000`) {
		t.Errorf("the agent's report does not show uid and gid 20000:\n%s", log)
	}
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
