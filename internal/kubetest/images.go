package kubetest

// The images the tests' pods run: the runner's, and agent images that carry it.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/agentrunner/agentrunner/internal/dockertest"
)

// runnerImageRepo holds the tests' runner images, tagged by a hash of the runner: two trees'
// tests on one engine (a developer's and CI's) each get their own.
const runnerImageRepo = "agentrunner/kube-runner"

var (
	runnerImageOnce sync.Once
	runnerImageErr  error
	runnerImageTag  string
	runnerExe       []byte
	carryingMu      sync.Mutex
	carrying        = map[string]string{} // base image → its image with the runner
)

// RunnerImage builds this tree's runner into a `FROM scratch` image at /runner, as `make
// runner-image` does, once per test binary, and returns its tag. It is built with the
// agentrunner_testonly tag, so that the egress proxy's pod accepts a test's fake upstream on
// the host's link (a production runner refuses the override).
func RunnerImage(t testing.TB) string {
	t.Helper()
	cli := dockertest.Client(t)
	runnerImageOnce.Do(func() {
		// Stripped, as `make runner-image` builds it: each pod copies it once.
		runnerExe, runnerImageErr = os.ReadFile(dockertest.BuildRunner(t, "-ldflags=-s -w", "-tags=agentrunner_testonly"))
		if runnerImageErr != nil {
			return
		}
		sum := sha256.Sum256(runnerExe)
		runnerImageTag = runnerImageRepo + ":" + hex.EncodeToString(sum[:8])
		removeStaleRunnerImages(cli)
		runnerImageErr = dockertest.BuildImage(context.Background(), cli, runnerImageTag, map[string]string{dockertest.LabelRun: "dockertest"},
			map[string][]byte{"Dockerfile": []byte("FROM scratch\nCOPY runner /runner\nENTRYPOINT [\"/runner\"]\n"), "runner": runnerExe})
	})
	if runnerImageErr != nil {
		t.Fatalf("build the runner image: %v", runnerImageErr)
	}
	return runnerImageTag
}

// removeStaleRunnerImages removes the tests' runner images (and the agent images made to
// carry them) built more than a day ago: each build of the runner tags its own, and no test
// run lasts a day, so none of those is in use by another tree's tests.
func removeStaleRunnerImages(cli client.APIClient) {
	ctx := context.Background()
	imgs, err := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", dockertest.LabelRun+"=dockertest"))})
	if err != nil {
		return
	}
	for _, img := range imgs {
		if time.Since(time.Unix(img.Created, 0)) < 24*time.Hour {
			continue
		}
		for _, tag := range img.RepoTags {
			if strings.HasPrefix(tag, runnerImageRepo+":") || strings.Contains(tag, "-carrying:") {
				_, _ = cli.ImageRemove(ctx, tag, image.RemoveOptions{})
			}
		}
	}
}

// CarryingImage is base with the runner of RunnerImage added at /.agentrunner/runner, as a
// user's Dockerfile adds it for `runner-in-agent-images` (`COPY --from=<runner image> /runner
// /.agentrunner/runner`); built once per test binary and base.
func CarryingImage(t testing.TB, base string) string {
	t.Helper()
	carryingMu.Lock()
	defer carryingMu.Unlock()
	if tag := carrying[base]; tag != "" {
		return tag
	}
	// Tagged by the runner too (RunnerImage's hash), for the same reason.
	name := base
	if i := strings.LastIndex(base, ":"); i > strings.LastIndex(base, "/") {
		name = base[:i]
	}
	tag := name + "-carrying:" + strings.TrimPrefix(RunnerImage(t), runnerImageRepo+":")
	err := dockertest.BuildImage(context.Background(), dockertest.Client(t), tag, map[string]string{dockertest.LabelRun: "dockertest"},
		map[string][]byte{"Dockerfile": []byte("FROM " + base + "\nCOPY runner /.agentrunner/runner\n"), "runner": runnerExe})
	if err != nil {
		t.Fatalf("build %s: %v", tag, err)
	}
	carrying[base] = tag
	return tag
}
