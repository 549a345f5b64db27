// Package dockertest holds helpers for integration tests that run against the real Docker
// engine: a shared client that fails the test loudly when the engine is unreachable, the test
// agent image (internal/testagent in a `FROM scratch` image, built through the Docker API
// because there is no registry to pull from), unique run ids, and a check that a test left no
// labelled container or network behind; and RunDirect, the bare Docker API baseline that
// benchmarks compare the sandbox and the engine against.
//
// Typical use:
//
//	cli := dockertest.Client(t)
//	img := dockertest.TestAgentImage(t)
//	runID := dockertest.RunID(t) // fails the test at cleanup if anything labelled runID remains
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
)

// TestAgentTag is the tag of the test agent image.
const TestAgentTag = "agentrunner/testagent:dev"

// ModelAPITag is the tag of the fake model API image (egress/internal/upstream): the tests'
// stand-in for the internet, which answers model calls with usage.
const ModelAPITag = "agentrunner/egress-upstream:dev"

// LabelRun is the label every agentrunner Docker object carries; it mirrors sandbox.LabelRun
// (this package must not import sandbox, whose tests import it).
const LabelRun = "agentrunner.run"

var (
	clientOnce sync.Once
	clientVal  *client.Client
	clientErr  error

	staticMu     sync.Mutex
	staticImages = map[string]func() error{}
)

// Client returns a Docker client shared by the test binary. It fails the test, with a message
// that says what to do, when the engine cannot be reached: integration tests must never pass
// silently without Docker.
func Client(t testing.TB) *client.Client {
	t.Helper()
	clientOnce.Do(func() {
		clientVal, clientErr = client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if clientErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := clientVal.Ping(ctx); err != nil {
			clientErr = err
			return
		}
		clientVal.NegotiateAPIVersion(ctx)
	})
	if clientErr != nil {
		host := os.Getenv("DOCKER_HOST")
		if host == "" {
			host = client.DefaultDockerHost
		}
		t.Fatalf("Docker engine unreachable at %s: %v\n"+
			"These integration tests need a running Docker engine: start dockerd or set DOCKER_HOST.", host, clientErr)
	}
	return clientVal
}

// TestAgentImage builds internal/testagent statically (CGO_ENABLED=0), puts it in a
// `FROM scratch` image at /testagent (also the entrypoint) tagged TestAgentTag, and returns
// the tag. The build happens once per test binary; test binaries running in parallel skip it
// when the tagged image already holds the same executable (checked by a label with its hash).
func TestAgentImage(t testing.TB) string {
	t.Helper()
	return StaticImage(t, "github.com/agentrunner/agentrunner/internal/testagent", TestAgentTag, "testagent")
}

// ModelAPIImage builds the fake model API (egress/internal/upstream) into a `FROM scratch`
// image tagged ModelAPITag, once per test binary like TestAgentImage, and returns the tag.
func ModelAPIImage(t testing.TB) string {
	t.Helper()
	return StaticImage(t, "github.com/agentrunner/agentrunner/egress/internal/upstream", ModelAPITag, "upstream")
}

// StaticImage builds the Go package pkg statically into /name of a `FROM scratch` image
// tagged tag (its entrypoint), once per test binary and tag, and returns the tag.
func StaticImage(t testing.TB, pkg, tag, name string) string {
	t.Helper()
	cli := Client(t)
	staticMu.Lock()
	build, ok := staticImages[tag]
	if !ok {
		build = sync.OnceValue(func() error { return buildStaticImage(cli, pkg, tag, name) })
		staticImages[tag] = build
	}
	staticMu.Unlock()
	if err := build(); err != nil {
		t.Fatalf("build the image %s of %s: %v", tag, pkg, err)
	}
	return tag
}

// buildStaticImage builds pkg statically into /name of a `FROM scratch` image tagged tag, with
// /name as its entrypoint; an image already tagged with the same executable (a label holds its
// hash) is kept, so parallel test binaries do not rebuild it.
func buildStaticImage(cli *client.Client, pkg, tag, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", name+"-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(exe)
	hash := hex.EncodeToString(sum[:])
	if img, err := cli.ImageInspect(ctx, tag); err == nil && img.Config != nil &&
		img.Config.Labels["agentrunner.testimage.sha256"] == hash {
		return nil
	}
	dockerfile := fmt.Sprintf("FROM scratch\nCOPY %s /%s\nENTRYPOINT [\"/%s\"]\n", name, name, name)
	return BuildImage(ctx, cli, tag, map[string]string{
		LabelRun:                       "dockertest",
		"agentrunner.testimage.sha256": hash,
	}, map[string][]byte{"Dockerfile": []byte(dockerfile), name: exe})
}

// BuildImage builds an image tagged tag from files (which must include a Dockerfile), sent as
// an in-memory tar build context. Files are written with mode 0755 so executables stay
// executable. Intermediate containers are removed even when the build fails.
func BuildImage(ctx context.Context, cli client.APIClient, tag string, labels map[string]string, files map[string][]byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		data := files[name]
		hdr := &tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags:        []string{tag},
		Labels:      labels,
		Remove:      true,
		ForceRemove: true,
		Dockerfile:  "Dockerfile",
	})
	if err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	defer resp.Body.Close()
	// The build's outcome is in its JSON message stream, not in the HTTP status.
	var log strings.Builder
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("build image %s: read build output: %w", tag, err)
		}
		log.WriteString(msg.Stream)
		if msg.Error != "" {
			return fmt.Errorf("build image %s: %s\n%s", tag, msg.Error, log.String())
		}
	}
}

// RunID returns a run id unique to this test ("t-" and random hex) and registers a cleanup,
// run after the test's own cleanups, that fails the test if any container, volume or network labelled
// with it remains. Use it as the run id of everything the test creates.
func RunID(t testing.TB) string {
	t.Helper()
	cli := Client(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	id := "t-" + hex.EncodeToString(b)
	// Registered first, so it runs last.
	t.Cleanup(func() { AssertNoLeftovers(t, cli, id) })
	return id
}

// AssertNoLeftovers fails the test if a container (running or not), a volume or a network labelled
// agentrunner.run=runID exists, and removes them so one failure does not leak into others.
func AssertNoLeftovers(t testing.TB, cli client.APIClient, runID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", LabelRun+"="+runID))
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Errorf("list containers of run %s: %v", runID, err)
		return
	}
	var left []string
	for _, c := range cs {
		left = append(left, "container "+strings.Join(c.Names, ",")+" ("+c.State+")")
		_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}
	vs, err := cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		t.Errorf("list volumes of run %s: %v", runID, err)
		return
	}
	for _, v := range vs.Volumes {
		left = append(left, "volume "+v.Name)
		_ = cli.VolumeRemove(ctx, v.Name, true)
	}
	ns, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		t.Errorf("list networks of run %s: %v", runID, err)
		return
	}
	for _, n := range ns {
		left = append(left, "network "+n.Name)
		_ = cli.NetworkRemove(ctx, n.ID)
	}
	if len(left) > 0 {
		t.Errorf("run %s left Docker objects behind: %s", runID, strings.Join(left, "; "))
	}
}

// RunDirect is the benchmarks' baseline: it creates a container from cfg, hc and nc, starts it,
// waits for it to exit and removes it, straight through the Docker API and nothing else (no
// logs, no workspace, no outputs). It fails the test on any error and when the container
// exits with a code other than 0.
func RunDirect(ctx context.Context, tb testing.TB, cli client.APIClient, cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig) {
	c, err := cli.ContainerCreate(ctx, cfg, hc, nc, nil, "")
	if err != nil {
		tb.Fatal(err)
	}
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		tb.Fatal(err)
	}
	statusCh, errCh := cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	select {
	case st := <-statusCh:
		if st.StatusCode != 0 {
			tb.Fatalf("exit %d", st.StatusCode)
		}
	case err := <-errCh:
		tb.Fatal(err)
	}
	if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
		tb.Fatal(err)
	}
}

// EnvWorkspace names the workspace mode the engine's integration tests run in: checkout (the
// default) or overlay. `make test` runs those packages once in each.
const EnvWorkspace = "AGENTRUNNER_TEST_WORKSPACE"

// WorkspaceMode returns the workspace mode to test in (see EnvWorkspace), failing the test on
// any other value.
func WorkspaceMode(t testing.TB) string {
	t.Helper()
	switch m := os.Getenv(EnvWorkspace); m {
	case "", "checkout":
		return "checkout"
	case "overlay":
		return m
	default:
		t.Fatalf("%s=%q: want checkout or overlay", EnvWorkspace, m)
		return ""
	}
}

// BuildRunner builds the runner's static Linux executable into a temporary directory: what
// runs inside containers as the agents' supervisor, the overlay probe and the egress proxy,
// and what crash tests start and kill. flags go to go build (-tags=agentrunner_testonly for a
// proxy that accepts the test-only address filter).
func BuildRunner(t testing.TB, flags ...string) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "runner")
	args := append(append([]string{"build", "-trimpath", "-o", exe}, flags...), "github.com/agentrunner/agentrunner/cmd/runner")
	build := exec.Command("go", args...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the runner: %v\n%s", err, out)
	}
	return exe
}
