package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/internal/english"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/spf13/cobra"
)

func init() { register(newValidateCmd) }

func newValidateCmd(s *streams) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Check .agents/*.yaml and print every problem as file:line:col",
		Long: "Validate loads every routine of DIR (default: the .agents directory of the git\n" +
			"repository around the current directory), prints each problem as file:line:col: message\n" +
			"and exits 1, or prints a one-line summary and exits 0.",
		Args: argsUsage(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := ""
			if len(args) == 1 {
				dir = args[0]
			}
			return runValidate(s, dir)
		},
	}
}

func runValidate(s *streams, dir string) error {
	cwd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("find the current directory: %w", err)
	}
	if dir == "" {
		if dir, err = findAgentsDir(cwd); err != nil {
			return err
		}
	}
	shown := relTo(cwd, dir)
	cfg, err := config.Load(dir)
	var errs config.Errors
	if err != nil && !errors.As(err, &errs) {
		return err
	}
	if err == nil {
		// The loader checks the format; compiling the ${{ }} expressions is the planner's.
		errs = plan.Compile(cfg)
	}
	if len(errs) > 0 {
		for _, e := range errs {
			if e.Pos.File != "" {
				e.Pos.File = relTo(cwd, e.Pos.File)
			}
			fmt.Fprintln(s.Out, e.Error())
		}
		fmt.Fprintf(s.Err, "%s: %s\n", shown, english.Count(len(errs), "problem"))
		return errSilent
	}
	if len(cfg.Routines) == 0 {
		fmt.Fprintf(s.Out, "%s: no routine files (*.yaml, *.yml); add one, see examples/.agents\n", shown)
		return errSilent
	}
	printConfigErrors(s.Err, unqualifiedImages(cfg))
	agents := 0
	for _, r := range cfg.Routines {
		agents += len(r.Agents)
	}
	_, err = fmt.Fprintf(s.Out, "%s: %s, %s OK\n", shown, english.Count(len(cfg.Routines), "routine"), english.Count(agents, "agent"))
	return err
}

// relTo shows path relative to the working directory when that is shorter, as editors and
// terminals make file:line:col clickable that way.
func relTo(cwd, path string) string {
	abs := path
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(cwd, abs)
	}
	rel, err := filepath.Rel(cwd, abs)
	if err != nil || len(rel) >= len(abs) {
		return abs
	}
	return rel
}

// findAgentsDir returns the .agents directory of the git repository containing dir.
func findAgentsDir(dir string) (string, error) {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, ".git")); err == nil {
			agents := filepath.Join(d, ".agents")
			if st, err := os.Stat(agents); err != nil || !st.IsDir() {
				return "", fmt.Errorf("the git repository at %s has no .agents directory; create it with a routine (see examples/.agents), or pass a directory: runner validate DIR", d)
			}
			return agents, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("%s is not inside a git repository; pass the directory to check: runner validate DIR", dir)
		}
		d = parent
	}
}
