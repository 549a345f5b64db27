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
	"strings"
	"sync"
	"time"

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
	if exe == "" {
		self, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("proxy image: find the runner's own executable: %w", err)
		}
		exe = self
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		return "", fmt.Errorf("proxy image: read %s: %w", exe, err)
	}
	if err := checkStatic(data); err != nil {
		return "", fmt.Errorf("proxy image: %s: %w", exe, err)
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
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
	if err := buildImage(ctx, cli, tag, hash, data); err != nil {
		return "", err
	}
	imageCache[hash] = tag
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

func buildImage(ctx context.Context, cli client.APIClient, tag, hash string, exe []byte) error {
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte("FROM scratch\nCOPY runner /runner\nUSER 65534:65534\nENTRYPOINT [\"/runner\", \"proxy\"]\n")},
		{"runner", 0o755, exe},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			return fmt.Errorf("build proxy image %s: %w", tag, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("build proxy image %s: %w", tag, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("build proxy image %s: %w", tag, err)
	}
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags:        []string{tag},
		Labels:      map[string]string{labelExeHash: hash},
		Remove:      true,
		ForceRemove: true,
		Dockerfile:  "Dockerfile",
	})
	if err != nil {
		return fmt.Errorf("build proxy image %s: %s", tag, cleanErr(err))
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
			return fmt.Errorf("build proxy image %s: read build output: %w", tag, err)
		}
		if msg.Error != "" {
			return fmt.Errorf("build proxy image %s: %s", tag, msg.Error)
		}
	}
}

// cleanErr drops the noise Docker adds to its errors.
func cleanErr(err error) string {
	msg := strings.ReplaceAll(err.Error(), "Error response from daemon: ", "")
	return strings.TrimSuffix(msg, ": unknown")
}
