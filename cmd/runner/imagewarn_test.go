package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/images"
)

// An image Docker would pull from Docker Hub by a bare name is warned of, with its place; a
// qualified name, or one never pulled, is not. The routine stays valid.
func TestValidateWarnsOfUnqualifiedImages(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".agents")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	routine := "on: {push: {branches: [main]}}\nagents:\n" +
		"  hub: {uses: claude-code, prompt: hi, image: agents/claude:1}\n" +
		"  ghcr: {uses: claude-code, prompt: hi, image: ghcr.io/acme/claude:1}\n" +
		"  local: {uses: claude-code, prompt: hi, image: localhost/agentrunner/claude-code:2.1.328}\n" +
		"  never: {uses: claude-code, prompt: hi, image: ubuntu:24.04, pull-policy: never}\n"
	file := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(file, []byte(routine), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "validate", dir)
	if code != 0 || !strings.HasSuffix(out, "OK\n") {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	want := file + ":3:3: warning: image agents/claude:1 is unqualified: it would be pulled from Docker Hub, " +
		"whose namespace owner controls it; name it fully (registry/namespace/name:tag) or build it locally (make images)\n"
	if errOut != want {
		t.Errorf("stderr = %q, want only %q", errOut, want)
	}
}

// Our own routines and the examples name their images fully, and the preset images exactly as
// `make images` builds them from images/<preset>/Dockerfile.
func TestOwnAndExampleImagesAreQualifiedAndMatchTheDockerfiles(t *testing.T) {
	for _, dir := range []string{"../../.agents", "../../examples/.agents"} {
		cfg, err := config.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range unqualifiedImages(cfg) {
			t.Errorf("%s", w.Error())
		}
		for _, r := range cfg.Routines {
			for _, a := range r.Agents {
				rest, ok := strings.CutPrefix(a.Image, images.Namespace+"/")
				if !ok {
					continue
				}
				preset, _, _ := strings.Cut(rest, ":")
				want, err := images.Reference(preset)
				if err != nil || a.Image != want {
					t.Errorf("%s: agent %s: image %s, but make images builds %s (%v)", r.Pos.File, a.Name, a.Image, want, err)
				}
			}
		}
	}
}
