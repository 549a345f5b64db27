package main

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/internal/english"
	"github.com/agentrunner/agentrunner/internal/termsafe"
	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
)

func init() {
	register(newCancelCmd)
	register(newRerunCmd)
}

func newCancelCmd(s *streams) *cobra.Command {
	var a apiFlags
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel RUN_ID",
		Short: "Cancel a run on the daemon: its agents are stopped and it concludes cancelled",
		Long: `Cancel RUN_ID on the daemon at --server: its unfinished agents are stopped (on whichever daemon
of the fleet runs them) and the run concludes "cancelled" with --reason, on its check run too.
A run that has already finished is refused (exit 1); 'runner rerun' runs it again.`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			var res daemon.CancelResult
			if err := a.call(cmd.Context(), http.MethodPost, "/api/v1/runs/"+url.PathEscape(id)+"/cancel", server.CancelRequest{Reason: reason}, &res); err != nil {
				return err
			}
			if res.Status == store.RunCompleted {
				fmt.Fprintf(s.Out, "run %s cancelled\n", termsafe.Line(res.RunID))
				return nil
			}
			fmt.Fprintf(s.Out, "run %s: %s cancelled; its agents are stopping\n", termsafe.Line(res.RunID), english.Count(res.CancelledJobs, "job"))
			return nil
		},
	}
	a.add(cmd.Flags())
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown on the run and its check run")
	return cmd
}

func newRerunCmd(s *streams) *cobra.Command {
	var a apiFlags
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "rerun RUN_ID",
		Short: "Run a finished run again: same event, same commit",
		Long: `Queue RUN_ID again on the daemon at --server, from the start: the same event, the same commit,
the same run id. Only a finished run is run again (cancel a running one first). Prints the
run id; with --wait, waits for the run and exits like 'runner dispatch --wait': 0 when it
succeeded (or was neutral), 1 when it did not, 3 when --timeout passed first.`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res daemon.RerunResult
			if err := a.call(cmd.Context(), http.MethodPost, "/api/v1/runs/"+url.PathEscape(args[0])+"/rerun", nil, &res); err != nil {
				return err
			}
			fmt.Fprintf(s.Err, "run %s queued again\n", termsafe.Line(res.RunID))
			fmt.Fprintln(s.Out, termsafe.Line(res.RunID))
			if !wait {
				return nil
			}
			return waitConclusion(cmd.Context(), s, &a, res.RunID, timeout)
		},
	}
	a.add(cmd.Flags())
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the run to finish")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "how long --wait waits")
	return cmd
}
