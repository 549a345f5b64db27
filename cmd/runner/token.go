package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agentrunner/agentrunner/internal/termsafe"
	"github.com/agentrunner/agentrunner/store"
)

func init() { register(newTokenCmd) }

func newTokenCmd(s *streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens (for dispatch and the read API)",
		Long: `API tokens authenticate calls to the daemon's HTTP API (runner dispatch, runs, logs).
Each has a scope, and each scope includes the ones before it:
  read      read runs, jobs and logs
  dispatch  also start, cancel and rerun runs (the default)
  admin     also manage the daemon itself
A token may expire (--expires); an expired one is refused with a 401 that says so.`,
	}
	var f storeFlags
	f.add(cmd.PersistentFlags())
	cmd.AddCommand(newTokenCreateCmd(s, &f), newTokenListCmd(s, &f), newTokenRevokeCmd(s, &f))
	return cmd
}

// defaultTokenScope is dispatch: what the README's use of a token (dispatch, then read the
// run) needs, without what only an operator should do (admin).
const defaultTokenScope = store.ScopeDispatch

func newTokenCreateCmd(s *streams, f *storeFlags) *cobra.Command {
	var scope, expires string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a token and print it (it is shown once; only its hash is stored)",
		Args:  argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok := store.Token{Name: args[0]}
			var err error
			if tok.Scope, err = store.ParseScope(scope); err != nil {
				return usageError{fmt.Errorf("--scope: %w", err)}
			}
			if tok.ExpiresAt, err = parseExpiry(expires, time.Now()); err != nil {
				return usageError{fmt.Errorf("--expires: %w", err)}
			}
			st, err := f.open(cmd, s.Err)
			if err != nil {
				return err
			}
			defer st.Close()
			plain, err := st.CreateToken(cmd.Context(), tok)
			if errors.Is(err, store.ErrExists) {
				fmt.Fprintf(s.Err, "error: a token named %q exists; revoke it first with `runner token revoke %s`\n", termsafe.Line(args[0]), termsafe.Line(args[0]))
				return errSilent
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Err, "token %s: scope %s, expires %s\n", termsafe.Line(tok.Name), tok.Scope, expiryText(tok.ExpiresAt, time.Now()))
			_, err = fmt.Fprintln(s.Out, plain)
			return err
		},
	}
	cmd.Flags().StringVar(&scope, "scope", string(defaultTokenScope), "what the token may do: read, dispatch or admin (each includes the ones before it)")
	cmd.Flags().StringVar(&expires, "expires", "", "when it stops working: after a duration (30d, 720h) or at a date (2027-01-31, 00:00 UTC; or RFC 3339); default never")
	return cmd
}

// TokenView is a token as `runner token list --json` shows it: never its hash.
type TokenView struct {
	Name       string      `json:"name"`
	Scope      store.Scope `json:"scope"`
	CreatedAt  time.Time   `json:"created_at"`
	ExpiresAt  time.Time   `json:"expires_at,omitzero"`
	Expired    bool        `json:"expired"`
	LastUsedAt time.Time   `json:"last_used_at,omitzero"`
}

func newTokenListCmd(s *streams, f *storeFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the tokens: name, scope, created, expires, last used (to the minute)",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := f.open(cmd, s.Err)
			if err != nil {
				return err
			}
			defer st.Close()
			toks, err := st.ListTokens(cmd.Context())
			if err != nil {
				return err
			}
			now := time.Now()
			if asJSON {
				out := make([]TokenView, len(toks))
				for i, t := range toks {
					out[i] = TokenView{Name: t.Name, Scope: t.Scope, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
						Expired: t.Expired(now), LastUsedAt: t.LastUsedAt}
				}
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			if len(toks) == 0 {
				fmt.Fprintln(s.Err, "no tokens; create one with `runner token create NAME`")
				return nil
			}
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSCOPE\tCREATED\tEXPIRES\tLAST USED")
			for _, t := range toks {
				used := "never"
				if !t.LastUsedAt.IsZero() {
					used = localTime(t.LastUsedAt)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", termsafe.Line(t.Name), termsafe.Line(string(t.Scope)),
					localTime(t.CreatedAt), expiryText(t.ExpiresAt, now), used)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newTokenRevokeCmd(s *streams, f *storeFlags) *cobra.Command {
	return &cobra.Command{
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
				fmt.Fprintf(s.Err, "error: no token named %q (see `runner token list`)\n", termsafe.Line(args[0]))
				return errSilent
			} else if err != nil {
				return err
			}
			fmt.Fprintf(s.Err, "token %s revoked\n", termsafe.Line(args[0]))
			return nil
		},
	}
}

// expiryForms says what --expires takes, in every error about it.
const expiryForms = "want a duration (30d, 720h, 90m) or a date (2027-01-31, meaning 00:00 UTC that day, or RFC 3339 2027-01-31T12:00:00Z)"

// parseExpiry reads --expires relative to now: "" is never (the zero time), a positive
// duration in days ("30d") or Go's units ("720h"), or a future date or RFC 3339 time.
func parseExpiry(v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	var at time.Time
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return time.Time{}, fmt.Errorf("%q: %s", v, expiryForms)
		}
		at = now.AddDate(0, 0, n)
	} else if d, err := time.ParseDuration(v); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q is not positive: %s", v, expiryForms)
		}
		at = now.Add(d)
	} else if t, err := time.Parse(time.DateOnly, v); err == nil {
		at = t
	} else if t, err := time.Parse(time.RFC3339, v); err == nil {
		at = t
	} else {
		return time.Time{}, fmt.Errorf("%q: %s", v, expiryForms)
	}
	if !at.After(now) {
		return time.Time{}, fmt.Errorf("%q is already past (%s)", v, at.UTC().Format(time.RFC3339))
	}
	return at.UTC(), nil
}

// expiryText is a token's expiry for people.
func expiryText(at, now time.Time) string {
	switch {
	case at.IsZero():
		return "never"
	case !now.Before(at):
		return localTime(at) + " (expired)"
	default:
		return localTime(at)
	}
}

func localTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05 MST") }

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
