package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

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
			st, err := f.open(cmd)
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
			st, err := f.open(cmd)
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

// open opens the store the flags (and the environment and runner.yaml) name.
func (f *storeFlags) open(cmd *cobra.Command) (store.Store, error) {
	c, err := f.resolve(cmd.Flags())
	if err != nil {
		return nil, err
	}
	return store.Open(cmd.Context(), c.dsn())
}
