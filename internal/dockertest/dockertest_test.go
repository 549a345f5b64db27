package dockertest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
)

func TestTestAgentImageIsAStaticScratchImage(t *testing.T) {
	cli := Client(t)
	img, err := cli.ImageInspect(t.Context(), TestAgentImage(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(img.Config.Entrypoint); got != "[/testagent]" {
		t.Errorf("entrypoint = %s", got)
	}
	// FROM scratch plus one COPY: a single layer, nothing but the static executable.
	if n := len(img.RootFS.Layers); n != 1 {
		t.Errorf("%d layers, want 1", n)
	}
	if img.Config.Labels["agentrunner.testimage.sha256"] == "" || img.Config.Labels[LabelRun] == "" {
		t.Errorf("labels = %v", img.Config.Labels)
	}
}

// recorder is a testing.TB that records Errorf instead of failing the real test.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func TestAssertNoLeftoversReportsAndRemovesLeftovers(t *testing.T) {
	cli := Client(t)
	runID := RunID(t)
	c, err := cli.ContainerCreate(t.Context(), &container.Config{
		Image: TestAgentImage(t), Labels: map[string]string{LabelRun: runID},
	}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{TB: t}
	AssertNoLeftovers(rec, cli, runID)
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "left Docker objects behind: container") {
		t.Errorf("errors = %q, want one naming the container", rec.errors)
	}
	if _, err := cli.ContainerInspect(context.Background(), c.ID); err == nil {
		t.Error("the leftover container was not removed")
	}
	rec = &recorder{TB: t}
	AssertNoLeftovers(rec, cli, runID)
	if len(rec.errors) != 0 {
		t.Errorf("errors after cleanup = %q", rec.errors)
	}
}
