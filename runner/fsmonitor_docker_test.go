package runner

import (
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/workspace"
)

// fsmonitorEdits change the workspace every way the fsmonitor hook must report, then print
// what git sees. A path the hook left out would show as unchanged here and differ from the
// plain checkout's answer.
const fsmonitorEdits = `set -e
echo changed > top.txt
echo new > dir/added.txt
mkdir -p newdir/deep && echo n > newdir/deep/n.txt
rm dir/gone.txt
rm -r deleted
rm -r replaced && echo now-a-file > replaced
rm file-to-dir && mkdir file-to-dir && echo x > file-to-dir/inside
rm -r remade && mkdir remade && echo again > remade/one.txt
mv move-me.txt moved.txt
chmod +x script.sh
ln -s top.txt link
echo ----status
git status --porcelain
echo ----status-all
git status --porcelain -uall
echo ----diff
git diff --stat
git add -A
echo ----cached
git diff --cached --name-status -M
echo ----worktree
git worktree add -q /tmp/wt HEAD
cd /tmp/wt
echo elsewhere > top.txt
git status --porcelain
`

// TestFSMonitorGitMatchesPlainCheckout runs the same edits and git commands in an overlay
// workspace with the fsmonitor hook and in a plain checkout: git must answer the same, and say
// nothing about its hook or its caches.
func TestFSMonitorGitMatchesPlainCheckout(t *testing.T) {
	repo, sha := gittest.Repo(t, map[string]string{
		"top.txt": "top\n", "dir/gone.txt": "g\n", "dir/kept.txt": "k\n",
		"deleted/a.txt": "a\n", "deleted/sub/b.txt": "b\n",
		"replaced/x.txt": "x\n", "file-to-dir": "f\n",
		"remade/one.txt": "1\n", "remade/two.txt": "2\n",
		"move-me.txt": "a file long enough to be found as the same file when renamed\n",
		"script.sh":   "echo hi\n",
	})
	cli := dockertest.Client(t)
	runID := dockertest.RunID(t)
	t.Cleanup(func() { dockertest.AssertNoLeftovers(t, cli, runID) })
	sb := sandbox.NewDocker(cli, sandbox.Options{StopGrace: time.Second, InitExecutable: dockertest.BuildRunner(t)})
	img := hostToolsImage(t, runID, "git", "/bin/sh", "rm", "mkdir", "mv", "chmod", "ln")
	answers := map[workspace.Mode]string{}
	for _, m := range []workspace.Mode{workspace.ModeCheckout, workspace.ModeOverlay} {
		g := benchWorkspaces(t, m, repo, sha, runID, m == workspace.ModeOverlay)
		_, out := benchAgent(t, sb, g, runID, "edit-"+string(m), img, map[string]string{"GIT_TRACE2_PERF": "/tmp/trace"},
			"/bin/sh", "-c", fsmonitorEdits+"\ncd /workspace && git status --porcelain >/dev/null && echo ----trace && while read -r l; do case \"$l\" in *fsm_hook*|*opendir*) echo \"$l\";; esac; done < /tmp/trace")
		body, trace, _ := strings.Cut(out, "----trace")
		answers[m] = body
		for _, bad := range []string{"warning", "fatal", "error", "cannot"} {
			if strings.Contains(strings.ToLower(body), bad) {
				t.Errorf("%s mode: git says %q:\n%s", m, bad, body)
			}
		}
		if m == workspace.ModeOverlay && !strings.Contains(trace, "response-length") {
			t.Errorf("overlay mode: git did not query the fsmonitor hook; trace:\n%s", trace)
		}
	}
	if answers[workspace.ModeOverlay] != answers[workspace.ModeCheckout] {
		t.Errorf("git in the overlay workspace answers\n%s\nin a plain checkout\n%s", answers[workspace.ModeOverlay], answers[workspace.ModeCheckout])
	}
	if !strings.Contains(answers[workspace.ModeCheckout], " D deleted/sub/b.txt") || !strings.Contains(answers[workspace.ModeCheckout], " M top.txt") {
		t.Errorf("the edits did not happen as the test expects:\n%s", answers[workspace.ModeCheckout])
	}
}
