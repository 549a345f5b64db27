package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentrunner/agentrunner/internal/termsafe"
	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
)

func init() {
	register(newRunsCmd)
	register(newLogsCmd)
}

func newRunsCmd(s *streams) *cobra.Command {
	var a apiFlags
	var f store.RunFilter
	cmd := &cobra.Command{
		Use:   "runs [RUN_ID]",
		Short: "List the daemon's runs, or show one run and its jobs",
		Args:  argsUsage(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				var v server.RunView
				if err := a.call(cmd.Context(), http.MethodGet, "/api/v1/runs/"+url.PathEscape(args[0]), nil, &v); err != nil {
					return err
				}
				tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "run\t%s\nrepo\t%s\nroutine\t%s\nevent\t%s\nsha\t%s\nstatus\t%s\nconclusion\t%s\n",
					v.ID, v.Repo, v.Routine, v.Event, v.SHA, v.Status, v.Conclusion)
				if v.Error != "" {
					fmt.Fprintf(tw, "error\t%s\n", termsafe.Line(v.Error))
				}
				if !v.StartedAt.IsZero() && !v.FinishedAt.IsZero() {
					fmt.Fprintf(tw, "took\t%s\n", v.FinishedAt.Sub(v.StartedAt).Round(time.Millisecond))
				}
				_ = tw.Flush()
				if len(v.Jobs) > 0 {
					fmt.Fprintln(s.Out)
					tw = tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "JOB\tAGENT\tOUTCOME")
					for _, j := range v.Jobs {
						fmt.Fprintf(tw, "%s\t%s\t%s\n", termsafe.Line(j.ID), termsafe.Line(j.Agent), j.Outcome)
					}
					_ = tw.Flush()
				}
				return nil
			}
			if err := checkRunStatus(f.Status); err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"repo": f.Repo, "routine": f.Routine, "status": f.Status} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if f.Limit > 0 {
				q.Set("limit", strconv.Itoa(f.Limit))
			}
			var runs []server.RunView
			if err := a.call(cmd.Context(), http.MethodGet, "/api/v1/runs?"+q.Encode(), nil, &runs); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tREPO\tROUTINE\tEVENT\tSTATUS\tCONCLUSION\tCREATED")
			for _, r := range runs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Repo, r.Routine, r.Event, r.Status,
					dash(r.Conclusion), r.CreatedAt.Local().Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
	a.add(cmd.Flags())
	cmd.Flags().StringVar(&f.Repo, "repo", "", "only runs of OWNER/REPO")
	cmd.Flags().StringVar(&f.Routine, "routine", "", "only runs of this routine")
	cmd.Flags().StringVar(&f.Status, "status", "", "only runs in this status: queued, waiting, running, completed")
	cmd.Flags().IntVar(&f.Limit, "limit", 20, "at most this many runs, newest first")
	return cmd
}

func newLogsCmd(s *streams) *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{
		Use:   "logs RUN_ID [JOB]",
		Short: "Print a run's job logs (every job's, or one)",
		Args:  argsUsage(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			jobs := args[1:]
			if len(jobs) == 0 {
				var v server.RunView
				if err := a.call(cmd.Context(), http.MethodGet, "/api/v1/runs/"+url.PathEscape(id), nil, &v); err != nil {
					return err
				}
				for _, j := range v.Jobs {
					jobs = append(jobs, j.ID)
				}
				if len(jobs) == 0 {
					fmt.Fprintf(s.Err, "run %s has no job logs yet (status %s)\n", id, v.Status)
					return nil
				}
			}
			// On a terminal the agents' output is escaped; piped, it stays as logged.
			var out io.Writer = s.Out
			if isTerminal(s.Out) {
				out = escapingWriter{s.Out}
			}
			for _, j := range jobs {
				if len(args) == 1 {
					fmt.Fprintf(s.Out, "==> %s <==\n", termsafe.Line(j))
				}
				if err := a.call(cmd.Context(), http.MethodGet, "/api/v1/runs/"+url.PathEscape(id)+"/jobs/"+url.PathEscape(j)+"/log", nil, out); err != nil {
					return err
				}
			}
			return nil
		},
	}
	a.add(cmd.Flags())
	return cmd
}

// escapingWriter escapes each write for a terminal; each write must be whole text (the API
// client writes a log in one piece), as a rune split across writes would be escaped.
type escapingWriter struct{ w io.Writer }

func (e escapingWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(e.w, termsafe.Text(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// runStatuses are the values --status filters on; a conclusion is not one of them.
var runStatuses = []string{store.RunQueued, store.RunWaiting, store.RunRunning, store.RunCompleted}

// checkRunStatus refuses a --status the daemon would match against nothing, such as a
// conclusion (failed, success), instead of printing an empty list.
func checkRunStatus(s string) error {
	if s == "" || slices.Contains(runStatuses, s) {
		return nil
	}
	return usageError{fmt.Errorf("--status %q: a run's status is one of %s; how a completed run ended (success, failure, cancelled, timed_out, neutral) is in the CONCLUSION column of --status completed",
		s, strings.Join(runStatuses, ", "))}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
