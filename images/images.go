// Package images owns the Dockerfiles of the presets' agent images (images/<preset>/Dockerfile)
// and the names they are built under, and tells a qualified image reference from one Docker
// would look up on Docker Hub. It knows nothing of Docker itself: `make images` builds them.
package images

import (
	"embed"
	"fmt"
	"regexp"
	"strings"
)

//go:embed */Dockerfile
var dockerfiles embed.FS

// Namespace is the name every image built by `make images` starts with. Its first component,
// localhost, is a registry host to Docker, so a missing image is looked for at localhost (where
// nothing answers) and never on Docker Hub, whose namespace owners control what a bare name
// like agents/claude:1 runs.
const Namespace = "localhost/agentrunner"

var cliVersion = regexp.MustCompile(`(?m)^ARG CLI_VERSION=(\S+)$`)

// Dockerfile returns the Dockerfile of a preset's image.
func Dockerfile(preset string) ([]byte, error) {
	b, err := dockerfiles.ReadFile(preset + "/Dockerfile")
	if err != nil {
		return nil, fmt.Errorf("no image for preset %q in images/: %w", preset, err)
	}
	return b, nil
}

// Reference is the fully qualified name `make images` gives a preset's image:
// localhost/agentrunner/<preset>:<CLI version>.
func Reference(preset string) (string, error) {
	b, err := Dockerfile(preset)
	if err != nil {
		return "", err
	}
	m := cliVersion.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("images/%s/Dockerfile: no ARG CLI_VERSION=<version> line", preset)
	}
	return Namespace + "/" + preset + ":" + string(m[1]), nil
}

// Unqualified reports whether Docker would resolve ref on Docker Hub: its first path component
// names no registry host (no '.', no ':', not localhost), as in ubuntu or agents/claude:1.
func Unqualified(ref string) bool {
	first, _, ok := strings.Cut(ref, "/")
	if !ok {
		return true
	}
	return !strings.ContainsAny(first, ".:") && first != "localhost"
}

// UnqualifiedWarning explains why an unqualified image that would be pulled is a risk.
func UnqualifiedWarning(ref string) string {
	return fmt.Sprintf("image %s is unqualified: it would be pulled from Docker Hub, whose namespace owner controls it; "+
		"name it fully (registry/namespace/name:tag) or build it locally (make images)", ref)
}
