package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Exit codes, decided in exactly one place: run.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	// exitTimeout: a command gave up waiting (`dispatch --wait --timeout`); the run may still
	// be going, unlike a run that failed (exit 1).
	exitTimeout = 3
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// usageError marks an error in the command line itself; it prints usage and exits 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// silentError exits 1 without printing anything more: the command already said why.
var errSilent = errors.New("silent failure")

// waitTimeoutError is a wait that ran out of time; it exits exitTimeout.
type waitTimeoutError struct{ err error }

func (e waitTimeoutError) Error() string { return e.err.Error() }
func (e waitTimeoutError) Unwrap() error { return e.err }

// streams are the command's standard streams, swapped by tests.
type streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// run builds the command tree, executes it and turns its error into an exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	s := &streams{In: stdin, Out: stdout, Err: stderr}
	root := newRootCmd(s)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errSilent):
		return exitFailure
	case errors.As(err, new(waitTimeoutError)):
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitTimeout
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "error: %v\nRun 'runner --help' for usage.\n", err)
		return exitUsage
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "cancelled")
		return exitFailure
	default:
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFailure
	}
}

func newRootCmd(s *streams) *cobra.Command {
	root := &cobra.Command{
		Use:           "runner",
		Short:         "Run AI coding agents from .agents/*.yaml, locally or for GitHub",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	// `runner --version` prints what `runner version` prints.
	root.SetVersionTemplate(versionLine())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newVersionCmd(s))
	for _, add := range subcommands {
		root.AddCommand(add(s))
	}
	return root
}

// subcommands is filled by each command's file in init, so adding a command touches one file.
var subcommands []func(*streams) *cobra.Command

func register(f func(*streams) *cobra.Command) { subcommands = append(subcommands, f) }

func newVersionCmd(s *streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := io.WriteString(s.Out, versionLine())
			return err
		},
	}
}

// versionLine is the one answer to `runner version` and `runner --version`.
func versionLine() string { return "runner " + version + "\n" }

// argsUsage wraps cobra's arg validators so that a wrong count is a usage error.
func argsUsage(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}
