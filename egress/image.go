package egress

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
)

// ImageRepo is the repository of proxy images; the tag is a hash of the executable.
const ImageRepo = "agentrunner/proxy"

const labelExeHash = "agentrunner.proxy.sha256"

var (
	imageMu    sync.Mutex
	imageCache = map[string]string{} // executable hash → tag known to exist
)

// Image returns the proxy image for the runner executable at exe ("" means this process's
// own executable), building it through the Docker API when the engine does not have it yet:
// `FROM scratch`, the executable at /runner, entrypoint `/runner proxy`, tagged
// agentrunner/proxy:<first 16 hex digits of its SHA-256>. exe must be a static Linux
// executable (CGO_ENABLED=0), since the image holds nothing else.
func Image(ctx context.Context, cli client.APIClient, exe string) (string, error) {
	data, hash, err := readExecutable(exe)
	if err != nil {
		return "", fmt.Errorf("proxy image: %w", err)
	}
	tag := ImageRepo + ":" + hash[:16]

	imageMu.Lock()
	defer imageMu.Unlock()
	if imageCache[hash] != "" {
		return tag, nil
	}
	if img, err := cli.ImageInspect(ctx, tag); err == nil && img.Config != nil && img.Config.Labels[labelExeHash] == hash {
		imageCache[hash] = tag
		return tag, nil
	}
	dockerfile := "FROM scratch\nCOPY runner /runner\nUSER 65534:65534\nENTRYPOINT [\"/runner\", \"proxy\"]\n"
	if err := buildImage(ctx, cli, tag, map[string]string{labelExeHash: hash}, dockerfile, data); err != nil {
		return "", err
	}
	imageCache[hash] = tag
	return tag, nil
}

// readExecutable reads the runner executable at exe ("" means this process's own), checks
// that it is static, and returns it with its SHA-256 in hex.
func readExecutable(exe string) ([]byte, string, error) {
	if exe == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, "", fmt.Errorf("find the runner's own executable: %w", err)
		}
		exe = self
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", exe, err)
	}
	if err := checkStatic(data); err != nil {
		return nil, "", fmt.Errorf("%s: %w", exe, err)
	}
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:]), nil
}

// Connector images: a local connector's image with the runner executable added, so its
// sidecar runs `runner mcp-bridge` in front of the image's own stdio MCP server.
const (
	ConnectorImageRepo = "agentrunner/connector"
	// BridgePath is where the runner executable sits in a connector image.
	BridgePath     = "/.agentrunner/runner"
	labelBaseImage = "agentrunner.connector.base"
)

// ConnectorImage returns base (an image the engine holds) with the runner executable exe
// ("" means this process's own) at BridgePath, building it when the engine does not have it
// yet. The tag, agentrunner/connector:<16 hex digits>, hashes base's image id and the
// executable, so a new runner or a changed base image gets an image of its own.
func ConnectorImage(ctx context.Context, cli client.APIClient, exe, base string) (string, error) {
	info, err := cli.ImageInspect(ctx, base)
	if err != nil {
		return "", fmt.Errorf("connector image %s: %s", base, sandbox.CleanDockerError(err))
	}
	data, hash, err := readExecutable(exe)
	if err != nil {
		return "", fmt.Errorf("connector image %s: %w", base, err)
	}
	sum := sha256.Sum256([]byte(info.ID + "\n" + hash))
	tag := ConnectorImageRepo + ":" + hex.EncodeToString(sum[:])[:16]
	key := "connector " + tag

	imageMu.Lock()
	defer imageMu.Unlock()
	if imageCache[key] != "" {
		return tag, nil
	}
	if img, err := cli.ImageInspect(ctx, tag); err == nil && img.Config != nil &&
		img.Config.Labels[labelExeHash] == hash && img.Config.Labels[labelBaseImage] == info.ID {
		imageCache[key] = tag
		return tag, nil
	}
	// FROM the image id, not the name: the name may move while the build runs.
	dockerfile := "FROM " + info.ID + "\nCOPY runner " + BridgePath + "\n"
	if err := buildImage(ctx, cli, tag, map[string]string{labelExeHash: hash, labelBaseImage: info.ID}, dockerfile, data); err != nil {
		return "", err
	}
	imageCache[key] = tag
	return tag, nil
}

// CheckStatic reports why the executable at path could not run in an empty image (or in any
// image it is mounted into): not a Linux ELF file, or dynamically linked; nil when it can.
func CheckStatic(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return checkStatic(data)
}

// checkStatic refuses an executable the empty image could not run: not ELF, or dynamically
// linked (it would need an interpreter and libraries).
func checkStatic(data []byte) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not a Linux executable (%v); the proxy image needs the runner built for linux", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked; the proxy image is FROM scratch and needs a static runner (build with CGO_ENABLED=0)")
		}
	}
	return nil
}

// buildImage builds tag from dockerfile with the runner executable exe as the context's
// only other file, "runner".
func buildImage(ctx context.Context, cli client.APIClient, tag string, labels map[string]string, dockerfile string, exe []byte) error {
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte(dockerfile)},
		{"runner", 0o755, exe},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			return fmt.Errorf("build image %s: %w", tag, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("build image %s: %w", tag, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("build image %s: %w", tag, err)
	}
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags:        []string{tag},
		Labels:      labels,
		Remove:      true,
		ForceRemove: true,
		Dockerfile:  "Dockerfile",
	})
	if err != nil {
		return fmt.Errorf("build image %s: %s", tag, sandbox.CleanDockerError(err))
	}
	defer resp.Body.Close()
	// The outcome is in the JSON message stream, not in the HTTP status.
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("build image %s: read build output: %w", tag, err)
		}
		if msg.Error != "" {
			return fmt.Errorf("build image %s: %s", tag, msg.Error)
		}
	}
}
