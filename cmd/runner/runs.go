package main

import (
	"bufio"
	"bytes"
	"context"
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
				if v.RerunOf != "" {
					fmt.Fprintf(tw, "re-run of\t%s\n", termsafe.Line(v.RerunOf))
				}
				if v.Error != "" {
					fmt.Fprintf(tw, "error\t%s\n", termsafe.Line(v.Error))
				}
				if !v.StartedAt.IsZero() && !v.FinishedAt.IsZero() {
					fmt.Fprintf(tw, "took\t%s\n", v.FinishedAt.Sub(v.StartedAt).Round(time.Millisecond))
				}
				if v.SpendUSD > 0 {
					fmt.Fprintf(tw, "spend\t$%.4f (metered model calls)\n", v.SpendUSD)
				}
				_ = tw.Flush()
				if len(v.Jobs) > 0 {
					fmt.Fprintln(s.Out)
					tw = tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "JOB\tAGENT\tOUTCOME\tSPEND")
					for _, j := range v.Jobs {
						outcome, spend := j.Outcome, "-"
						if outcome == "" {
							outcome = j.State // a run under way
						}
						if j.Metered != nil {
							spend = fmt.Sprintf("$%.4f", j.Metered.USD)
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", termsafe.Line(j.ID), termsafe.Line(j.Agent), outcome, spend)
					}
					_ = tw.Flush()
				}
				return nil
			}
			if err := checkRunStatus(f.Status); err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"repo": f.Repo, "routine": f.Routine, "status": f.Status, "trigger": f.Event} {
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
	cmd.Flags().StringVar(&f.Event, "trigger", "", "only runs started by this event: push, pull_request, schedule, dispatch, …")
	cmd.Flags().IntVar(&f.Limit, "limit", 20, "at most this many runs, newest first")
	return cmd
}

func newLogsCmd(s *streams) *cobra.Command {
	var a apiFlags
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs RUN_ID [JOB]",
		Short: "Print a run's job logs (every job's, or one), or follow one job's as it runs",
		Long: `Print the logs of RUN_ID's jobs, or of JOB only. With -f, follow JOB's log while the run goes on
(the daemon that runs the job serves it live) and stop when the run is over.`,
		Args: argsUsage(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			jobs := args[1:]
			if follow {
				if len(jobs) == 0 {
					return usageError{fmt.Errorf("-f follows one job's log: name it (runner logs %s JOB -f; 'runner runs %s' lists the jobs of a finished run)", id, id)}
				}
				return followLog(cmd.Context(), s, &a, id, jobs[0], followPoll)
			}
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
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow JOB's log until the run is over")
	return cmd
}

// followPoll is how often a followed log is asked for more.
const followPoll = 500 * time.Millisecond

// followLog prints job's log of run id as it grows: live from the daemon's event stream,
// which any daemon of the fleet serves, or else by asking for the log's new bytes every poll.
func followLog(ctx context.Context, s *streams, a *apiFlags, id, job string, poll time.Duration) error {
	var out io.Writer = s.Out
	if isTerminal(s.Out) {
		out = escapingWriter{s.Out}
	}
	path := "/api/v1/runs/" + url.PathEscape(id) + "/jobs/" + url.PathEscape(job) + "/log"
	if done, err := followLive(ctx, s, a, path, job, id, out); done || err != nil {
		return err
	}
	return pollLog(ctx, s, a, path, id, job, out, poll)
}

// followLive prints the job's log from the API's event stream (?follow=sse) until the job
// ends, resuming where it stopped if the connection breaks. It returns false, nil when the
// daemon has no stream to offer (an older daemon, or an error the polling path explains).
func followLive(ctx context.Context, s *streams, a *apiFlags, path, job, id string, out io.Writer) (bool, error) {
	var last string
	told := false
	for failures := 0; ; {
		h := http.Header{"Accept": {"text/event-stream"}}
		if last != "" {
			h.Set("Last-Event-ID", last)
		}
		resp, err := a.request(ctx, http.MethodGet, path+"?follow=sse", nil, h)
		if err != nil {
			return false, err
		}
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusNoContent:
			resp.Body.Close()
			if last != "" {
				return true, nil // the run ended while the stream was being resumed
			}
			// Nothing live: the run is over, and its stored log is all there is.
			return true, a.call(ctx, http.MethodGet, path, nil, out)
		default:
			resp.Body.Close()
			return false, nil
		}
		ended, err := readEvents(resp.Body, out, &last, func() {
			if !told {
				fmt.Fprintf(s.Err, "waiting for job %s of run %s to start\n", termsafe.Line(job), termsafe.Line(id))
				told = true
			}
		})
		resp.Body.Close()
		if ended || ctx.Err() != nil {
			return true, ctx.Err()
		}
		if err == nil {
			failures = 0
		} else if failures++; failures >= 5 {
			return true, fmt.Errorf("GET %s: the log's stream broke: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// readEvents writes each event's data as a line to out and reports whether the "end" event
// came; *last follows the ids, for a resumed stream. waiting is called on the daemon's
// "waiting" comment.
func readEvents(r io.Reader, out io.Writer, last *string, waiting func()) (bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var event, id, data string
	var hasData bool
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event == "end" {
				return true, nil
			}
			if event == "" && hasData {
				if _, err := io.WriteString(out, data+"\n"); err != nil {
					return true, err
				}
			}
			if id != "" {
				*last = id
			}
			event, id, data, hasData = "", "", "", false
		case strings.HasPrefix(line, ": waiting"):
			waiting()
		case strings.HasPrefix(line, "data: "):
			data, hasData = line[len("data: "):], true
		case strings.HasPrefix(line, "id: "):
			id = line[len("id: "):]
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	return false, io.ErrUnexpectedEOF
}

// pollLog follows the log by asking the API for the bytes past those it has (a Range request)
// every poll, and stops once an answer says the run is over (the daemon reads the run's status
// before the log, so that answer holds the whole log). Lines are written whole, so a rune or an
// escape sequence split between two answers is escaped like any other (on a terminal).
func pollLog(ctx context.Context, s *streams, a *apiFlags, path, id, job string, out io.Writer, poll time.Duration) error {
	var off int64
	var pending []byte // the last line, until its end comes
	told := false
	for {
		resp, err := a.request(ctx, http.MethodGet, path, nil, http.Header{"Range": {fmt.Sprintf("bytes=%d-", off)}})
		if err != nil {
			return err
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("GET %s: read answer: %w", path, err)
		}
		status := resp.Header.Get("X-Run-Status")
		switch {
		case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent:
			if resp.StatusCode == http.StatusOK && off > 0 {
				// The whole log again (a server that ignores ranges): skip what was printed.
				data = data[min(off, int64(len(data))):]
			}
			off += int64(len(data))
			pending = append(pending, data...)
			if i := bytes.LastIndexByte(pending, '\n'); i >= 0 {
				if _, err := out.Write(pending[:i+1]); err != nil {
					return err
				}
				pending = append([]byte(nil), pending[i+1:]...)
			}
		case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
			// Nothing new. A log shorter than what was printed started over (the run was run
			// again): follow the new one from its start.
			var size int64
			if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes */%d", &size); err == nil && size < off {
				fmt.Fprintf(s.Err, "(the log of %s started over)\n", termsafe.Line(job))
				off, pending = 0, nil
			}
		case resp.StatusCode == http.StatusNotFound && status != "" && status != store.RunCompleted:
			// The run exists; the job has not started yet.
			if !told {
				fmt.Fprintf(s.Err, "waiting for job %s of run %s to start (run %s)\n", termsafe.Line(job), termsafe.Line(id), termsafe.Line(status))
				told = true
			}
		default:
			return apiAnswerError(http.MethodGet, path, resp.StatusCode, data)
		}
		if status == store.RunCompleted {
			if len(pending) > 0 {
				_, err := out.Write(pending)
				return err
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
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
