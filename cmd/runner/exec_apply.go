package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/agentrunner/agentrunner/internal/termsafe"
	"github.com/agentrunner/agentrunner/workspace"
)

// --apply's values: `--apply` alone applies a patch that touches nothing sensitive,
// `--apply=all` also one that does.
const (
	applySafe = "safe"
	applyAll  = "all"
)

// runsPrefix is the directory of the runner's results in the repository. No patch may write
// there: an agent must not change what its own or a later run records.
const runsPrefix = ".agents/.runs/"

// patchReview is what a combined patch touches that a person must see before it lands in their
// working tree.
type patchReview struct {
	refused   []string // paths under .agents/.runs/: never applied
	sensitive []string // "path (why)": applied only with --apply=all or a yes on a terminal
}

// reviewPatch sorts files into refused, sensitive and the rest. root is the working tree the
// patch goes to (it tells where a renamed symlink points).
func reviewPatch(root string, files []workspace.PatchFile) patchReview {
	var r patchReview
	for _, f := range files {
		paths := []string{f.Path}
		if f.OldPath != "" {
			paths = append(paths, f.OldPath)
		}
		refused := false
		for _, p := range paths {
			if p+"/" == runsPrefix || strings.HasPrefix(p, runsPrefix) {
				r.refused = append(r.refused, p)
				refused = true
			}
		}
		if refused {
			continue
		}
		if why := sensitiveFile(root, f); why != "" {
			name := f.Path
			if f.OldPath != "" {
				name = f.OldPath + " → " + f.Path
			}
			r.sensitive = append(r.sensitive, fmt.Sprintf("%s (%s)", name, why))
		}
	}
	return r
}

// sensitiveFile says why a change to f can run code or change how tools behave for whoever
// works in the repository afterwards; "" when it cannot.
func sensitiveFile(root string, f workspace.PatchFile) string {
	for _, p := range []string{f.Path, f.OldPath} {
		switch base := path.Base(p); {
		case p == "":
		case strings.HasPrefix(p, ".agents/"):
			return "routines the runner runs"
		case strings.HasPrefix(p, ".github/"):
			return "GitHub workflows and settings"
		case strings.HasPrefix(p, ".vscode/"):
			return "editor tasks and settings"
		case p == ".envrc":
			return "direnv runs it on cd"
		case p == ".gitmodules":
			return "submodule URLs git fetches"
		case strings.HasPrefix(base, ".git"):
			return "git attributes and ignore rules (filters, diff drivers)"
		}
	}
	switch {
	case f.Mode == "160000":
		return "a submodule"
	case f.IsSymlink():
		return symlinkRisk(f.Path, f.Target)
	case f.Mode == "" && f.OldPath != "":
		// A pure rename keeps the old file: see whether it is a symlink.
		if target, err := os.Readlink(filepath.Join(root, filepath.FromSlash(f.OldPath))); err == nil {
			return symlinkRisk(f.Path, target)
		}
	}
	return ""
}

// symlinkRisk says why a symlink at p pointing to target is dangerous: it points outside the
// repository or into its .git, where whatever follows it reads or writes what it should not.
func symlinkRisk(p, target string) string {
	if target == "" {
		return "a symlink whose target the patch does not show"
	}
	if path.IsAbs(target) {
		return "symlink to " + target + ", outside the repository"
	}
	to := path.Clean(path.Join(path.Dir(p), target))
	switch {
	case to == ".." || strings.HasPrefix(to, "../"):
		return "symlink to " + target + ", outside the repository"
	case to == ".git" || strings.HasPrefix(to, ".git/"):
		return "symlink to " + target + ", into .git"
	}
	return ""
}

// applyCombined applies a run's combined patch to the working tree at root after showing what in
// it is sensitive. Nothing is applied when it writes under .agents/.runs/, nor when it is
// sensitive and neither --apply=all nor a yes on a terminal allows it.
func applyCombined(ctx context.Context, s *streams, mode, root, routine, patchFile string, patch []byte) error {
	shown := relPath(patchFile)
	files, err := workspace.PatchFiles(patch)
	if err != nil {
		return fmt.Errorf("%s: not applied, its headers cannot be read for sure (%v); review it and apply it by hand with `git apply %s`", shown, err, shown)
	}
	r := reviewPatch(root, files)
	if len(r.refused) > 0 {
		return fmt.Errorf("%s: not applied: the combined patch of %s writes the runner's own results under %s (%s), which no agent may change; review it and apply the rest by hand",
			shown, routine, runsPrefix, strings.Join(r.refused, ", "))
	}
	if len(r.sensitive) > 0 {
		fmt.Fprintf(s.Err, "the combined patch of %s changes files that run code or configure tools:\n", termsafe.Line(routine))
		for _, line := range r.sensitive {
			fmt.Fprintf(s.Err, "  %s\n", line)
		}
		if mode != applyAll && !confirm(s, "apply it anyway? [y/N] ") {
			return fmt.Errorf("%s: not applied because of the files above; review it, then apply it with `git apply %s` or run again with --apply=all", shown, shown)
		}
	}
	out, err := exec.CommandContext(ctx, "git", "-C", root, "apply", "--whitespace=nowarn", patchFile).CombinedOutput()
	if err != nil {
		return fmt.Errorf("apply %s: %s", shown, strings.TrimSpace(string(out)))
	}
	fmt.Fprintf(s.Err, "applied the combined patch of %s to the working tree\n", termsafe.Line(routine))
	return nil
}

// confirm asks a person at a terminal; anywhere else the answer is no.
func confirm(s *streams, question string) bool {
	in, ok := s.In.(*os.File)
	if !ok || !isTerminal(in) || !isTerminal(s.Err) {
		return false
	}
	fmt.Fprint(s.Err, question)
	answer, err := bufio.NewReader(io.LimitReader(in, 256)).ReadString('\n')
	if err != nil {
		return false
	}
	a := strings.ToLower(strings.TrimSpace(answer))
	return a == "y" || a == "yes"
}
