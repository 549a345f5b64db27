package images

import (
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, its continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case: FROM, RUN, USER, ...
	args string
}

// parse is the part of the Dockerfile grammar these files use: comments, blank lines,
// instructions with backslash continuations.
func parse(t *testing.T, name string, src string) []instruction {
	t.Helper()
	var out []instruction
	var cur *instruction
	for i, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == nil && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		cont := strings.HasSuffix(trimmed, "\\")
		trimmed = strings.TrimSuffix(trimmed, "\\")
		if cur == nil {
			cmd, args, _ := strings.Cut(trimmed, " ")
			cur = &instruction{line: i + 1, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		} else {
			cur.args += " " + strings.TrimSpace(trimmed)
		}
		if !cont {
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		t.Fatalf("%s: the last instruction (line %d) ends in a continuation", name, cur.line)
	}
	return out
}

// Each preset's image pins its base images and its CLI to exact versions and runs as a
// non-root user.
func TestDockerfilesPinEverythingAndDropRoot(t *testing.T) {
	packages := map[string]string{ // how each CLI is installed, with its version from CLI_VERSION
		"claude-code": "npm install --global --prefix /opt/cli @anthropic-ai/claude-code@${CLI_VERSION}",
		"codex":       "npm install --global --prefix /opt/cli @openai/codex@${CLI_VERSION}",
		"gemini":      "npm install --global --prefix /opt/cli @google/gemini-cli@${CLI_VERSION}",
		"aider":       "pip install --no-cache-dir aider-chat==${CLI_VERSION}",
	}
	exactTag := regexp.MustCompile(`^[a-z0-9./-]+:[0-9]+\.[0-9]+\.[0-9]+[a-z0-9.-]*(@sha256:[0-9a-f]{64})?$`)
	exactVersion := regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)
	for preset, install := range packages {
		t.Run(preset, func(t *testing.T) {
			src, err := Dockerfile(preset)
			if err != nil {
				t.Fatal(err)
			}
			name := "images/" + preset + "/Dockerfile"
			ins := parse(t, name, string(src))
			var froms int
			var user, version string
			installed := false
			for _, in := range ins {
				switch in.cmd {
				case "FROM":
					froms++
					img, _, _ := strings.Cut(in.args, " ")
					if !exactTag.MatchString(img) {
						t.Errorf("%s:%d: FROM %s is not pinned to an exact version tag or digest", name, in.line, img)
					}
				case "ARG":
					if v, ok := strings.CutPrefix(in.args, "CLI_VERSION="); ok {
						version = v
					}
				case "RUN":
					installed = installed || strings.Contains(in.args, install)
				case "USER":
					user = in.args
				}
			}
			if froms < 2 {
				t.Errorf("%s: %d stages, want a builder and a runtime stage", name, froms)
			}
			if !exactVersion.MatchString(version) {
				t.Errorf("%s: CLI_VERSION %q is not an exact version", name, version)
			}
			if !installed {
				t.Errorf("%s: no RUN installs the CLI as %q", name, install)
			}
			uid, _, _ := strings.Cut(user, ":")
			if user == "" || uid == "root" || uid == "0" {
				t.Errorf("%s: the last USER is %q, want a non-root user", name, user)
			}
			ref, err := Reference(preset)
			if err != nil || ref != "localhost/agentrunner/"+preset+":"+version {
				t.Errorf("Reference(%s) = %q, %v", preset, ref, err)
			}
		})
	}
}

func TestUnqualified(t *testing.T) {
	for ref, want := range map[string]bool{
		"ubuntu":              true,
		"agents/claude:1":     true,
		"library/golang:1.26": true,
		"golang:1.26":         true,
		"localhost/agentrunner/claude-code:2.1.328": false,
		"ghcr.io/acme/agent:1":                      false,
		"registry.example.com:5000/a/b:1":           false,
		"localhost:5000/x:1":                        false,
	} {
		if got := Unqualified(ref); got != want {
			t.Errorf("Unqualified(%q) = %v, want %v", ref, got, want)
		}
	}
}
