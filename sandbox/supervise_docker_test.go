package sandbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/sandbox"
)

// An agent that runs its image's own entrypoint and command (no Argv) is supervised like any
// other: started on its own, without the runner's timer, its container stops at the deadline.
func TestImagesOwnCommandStopsAtItsDeadlineWithoutTheRunner(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	base := dockertest.TestAgentImage(t)
	runID := dockertest.RunID(t)
	tag := "agentrunner/testagent-hold:" + runID
	if err := dockertest.BuildImage(t.Context(), cli, tag, map[string]string{sandbox.LabelRun: runID},
		map[string][]byte{"Dockerfile": []byte("FROM " + base + "\nCMD [\"hold\"]\n")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	exe := dockertest.BuildRunner(t)
	sb := sandbox.NewDocker(cli, sandbox.Options{StopGrace: time.Second, InitExecutable: exe})
	spec := newSpec(t, runID)
	spec.Image, spec.Argv, spec.Timeout = tag, nil, 2*time.Second
	h, info := prepared(t, sb, spec)
	if info.Path != sandbox.InitPath {
		t.Fatalf("the container runs %s %v, want the image's command under %s", info.Path, info.Args, sandbox.InitPath)
	}
	if n := len(info.Args); n < 2 || info.Args[n-2] != "/testagent" || info.Args[n-1] != "hold" {
		t.Errorf("supervised argv %v does not end with the image's own command [/testagent hold]", info.Args)
	}
	// Started directly: nothing of the runner watches it.
	if err := cli.ContainerStart(t.Context(), h.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	statusCh, errCh := cli.ContainerWait(waitCtx, h.ID, container.WaitConditionNotRunning)
	select {
	case st := <-statusCh:
		if st.StatusCode != sandbox.ExitDeadline {
			t.Errorf("the container exited %d, want the supervisor's %d", st.StatusCode, sandbox.ExitDeadline)
		}
	case err := <-errCh:
		t.Fatalf("the container did not stop by itself at its deadline: %v", err)
	}
}
