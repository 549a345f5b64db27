package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agentrunner/agentrunner/store"
)

func init() { register(newTokenCmd) }

func newTokenCmd(s *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create and revoke API tokens (for dispatch and the read API)",
	}
	var f storeFlags
	f.add(cmd.PersistentFlags())
	cmd.AddCommand(&cobra.Command{
		Use:   "create NAME",
		Short: "Create a token and print it (it is shown once; only its hash is stored)",
		Args:  argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := f.open(cmd, s.Err)
			if err != nil {
				return err
			}
			defer st.Close()
			tok, err := st.CreateToken(cmd.Context(), args[0])
			if errors.Is(err, store.ErrExists) {
				fmt.Fprintf(s.Err, "error: a token named %q exists; revoke it first with `runner token revoke %s`\n", args[0], args[0])
				return errSilent
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(s.Out, tok)
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token",
		Args:  argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := f.open(cmd, s.Err)
			if err != nil {
				return err
			}
			defer st.Close()
			if err := st.RevokeToken(cmd.Context(), args[0]); errors.Is(err, store.ErrNotFound) {
				fmt.Fprintf(s.Err, "error: no token named %q\n", args[0])
				return errSilent
			} else if err != nil {
				return err
			}
			fmt.Fprintf(s.Err, "token %s revoked\n", args[0])
			return nil
		},
	})
	return cmd
}

// open opens the store the flags (and the environment and runner.yaml) name, resolved as
// `runner serve` resolves its own, and says on w which store that is and where it came from:
// without --config a token lands in the default store, which is the daemon's only when the
// daemon also runs without one.
func (f *storeFlags) open(cmd *cobra.Command, w io.Writer) (store.Store, error) {
	c, err := f.resolve(cmd.Flags())
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "store: %s (%s)\n", describeStore(c.dsn()), f.origin(cmd.Flags()))
	return store.Open(cmd.Context(), c.dsn())
}

// describeStore names a store location for people: its kind and where it is, without a
// password.
func describeStore(dsn string) string {
	if path, ok := strings.CutPrefix(dsn, "sqlite://"); ok {
		return "sqlite " + path
	}
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		return "postgres " + u.Redacted()
	}
	return dsn
}

// origin says which setting chose the store.
func (f *storeFlags) origin(fs *pflag.FlagSet) string {
	switch {
	case fs.Changed("database"):
		return "--database"
	case os.Getenv("AGENTRUNNER_DATABASE") != "":
		return "AGENTRUNNER_DATABASE"
	case fs.Changed("data-dir"):
		return "--data-dir"
	case os.Getenv("AGENTRUNNER_DATA_DIR") != "":
		return "AGENTRUNNER_DATA_DIR"
	case f.Config != "":
		return "config " + f.Config
	default:
		return "the default: no --config, AGENTRUNNER_CONFIG, --data-dir or --database; pass the daemon's --config to use its store"
	}
}
