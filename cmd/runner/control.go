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
		Use:   "cancel RUN_ID [JOB]",
		Short: "Cancel a run, or one job of it, on the daemon: its agents are stopped",
		Long: `Cancel RUN_ID on the daemon at --server: its unfinished agents are stopped (on whichever daemon
of the fleet runs them) and the run concludes "cancelled" with --reason, on its check run too.
A run that has already finished is refused (exit 1); 'runner rerun' runs it again.

With JOB (a job id as 'runner runs RUN_ID' lists them, e.g. review or review[b]#2), only that
job is cancelled: its container is stopped and removed, it ends "cancelled", and the run goes
on with its other jobs. Agents that need the cancelled one are skipped as after a failure,
unless their if: says always(). A job that has already finished is refused (exit 1).`,
		Args: argsUsage(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			if len(args) == 2 {
				return cancelJob(cmd, s, &a, id, args[1], reason)
			}
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
		Long: `Run RUN_ID again on the daemon at --server as a new run: the same event, the same routine and
inputs, the same commit, under a new run id recorded as a re-run of RUN_ID, which stays as it
was. Only a finished run is run again (cancel a running one first). Prints the new run id;
with --wait, waits for it and exits like 'runner dispatch --wait': 0 when it succeeded (or
was neutral), 1 when it did not, 3 when --timeout passed first.`,
		Args: argsUsage(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res daemon.RerunResult
			if err := a.call(cmd.Context(), http.MethodPost, "/api/v1/runs/"+url.PathEscape(args[0])+"/rerun", nil, &res); err != nil {
				return err
			}
			fmt.Fprintf(s.Err, "run %s queued: a re-run of %s at %s\n", termsafe.Line(res.RunID), termsafe.Line(res.RerunOf), termsafe.Line(shortSHA(res.SHA)))
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

// cancelJob cancels one job of a run (runner cancel RUN JOB).
func cancelJob(cmd *cobra.Command, s *streams, a *apiFlags, runID, job, reason string) error {
	var res daemon.CancelJobResult
	path := "/api/v1/runs/" + url.PathEscape(runID) + "/jobs/" + url.PathEscape(job) + "/cancel"
	if err := a.call(cmd.Context(), http.MethodPost, path, server.CancelRequest{Reason: reason}, &res); err != nil {
		return err
	}
	what := "it is stopping"
	switch res.State {
	case store.RunJobPending:
		what = "it will not start"
	case store.RunJobFinished:
		what = "it was already cancelled"
	}
	fmt.Fprintf(s.Out, "job %s of run %s cancelled; %s, the run goes on\n", termsafe.Line(res.Job), termsafe.Line(res.RunID), what)
	return nil
}
