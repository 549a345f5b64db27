package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/image"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/sandbox"
)

// gitImage builds an image holding the host's git and the shared libraries it links (the test
// image has no git, and there is no registry to pull one from): `docker build` of a FROM
// scratch context made of those files, which works offline.
func gitImage(tb testing.TB, runID string) string {
	return hostToolsImage(tb, runID, "git")
}

// hostToolsImage builds an image of the host's programs named (looked up on PATH, kept at the
// same path; an absolute name is taken as it is) with the libraries they link.
func hostToolsImage(tb testing.TB, runID string, programs ...string) string {
	tb.Helper()
	files := map[string][]byte{}
	var copies []string
	seen := map[string]bool{}
	add := func(host, inImage string) {
		if seen[inImage] {
			return
		}
		seen[inImage] = true
		data, err := os.ReadFile(host)
		if err != nil {
			tb.Fatal(err)
		}
		name := fmt.Sprintf("f%d", len(files))
		files[name] = data
		copies = append(copies, fmt.Sprintf("COPY %s %s", name, inImage))
	}
	for _, prog := range programs {
		path := prog
		if !filepath.IsAbs(prog) {
			var err error
			if path, err = exec.LookPath(prog); err != nil {
				tb.Fatal(err)
			}
		}
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			tb.Fatal(err)
		}
		add(real, path)
		if prog == "git" {
			add(real, "/usr/bin/git")
		}
		out, err := exec.Command("ldd", real).Output()
		if err != nil {
			tb.Fatalf("ldd %s: %v", real, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			// "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
			f := strings.Fields(line)
			var lib string
			switch {
			case len(f) >= 3 && f[1] == "=>":
				lib = f[2]
			case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
				lib = f[0]
			}
			if lib == "" {
				continue
			}
			realLib, err := filepath.EvalSymlinks(lib)
			if err != nil {
				tb.Fatal(err)
			}
			add(realLib, lib)
		}
	}
	files["Dockerfile"] = []byte("FROM scratch\n" + strings.Join(copies, "\n") + "\n")
	tag := "agentrunner/test-tools:" + runID
	cli := dockertest.Client(tb)
	if err := dockertest.BuildImage(context.Background(), cli, tag, map[string]string{sandbox.LabelRun: runID}, files); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	return tag
}
