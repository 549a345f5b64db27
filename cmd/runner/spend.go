package main

import (
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/agentrunner/agentrunner/internal/termsafe"
	"github.com/agentrunner/agentrunner/server"
)

func init() { register(newSpendCmd) }

func newSpendCmd(s *streams) *cobra.Command {
	var a apiFlags
	var day string
	cmd := &cobra.Command{
		Use:   "spend",
		Short: "Show a day's model spend by repository and routine, as the egress proxies metered it",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var v server.SpendView
			if err := a.call(cmd.Context(), http.MethodGet, "/api/v1/spend?"+url.Values{"day": {day}}.Encode(), nil, &v); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REPO\tROUTINE\tSPEND")
			for _, r := range v.Routines {
				fmt.Fprintf(tw, "%s\t%s\t$%.4f\n", termsafe.Line(r.Repo), termsafe.Line(r.Routine), r.USD)
			}
			fmt.Fprintf(tw, "\t%s in all\t$%.4f\n", v.Day, v.TotalUSD)
			return tw.Flush()
		},
	}
	a.add(cmd.Flags())
	cmd.Flags().StringVar(&day, "day", "", "the UTC day, like 2026-12-06 (default: today)")
	return cmd
}
