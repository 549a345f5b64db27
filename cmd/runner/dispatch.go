package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
)

func init() { register(newDispatchCmd) }

// apiFlags locate the daemon's API.
type apiFlags struct {
	Server string
	Token  string
}

func (a *apiFlags) add(fs *pflag.FlagSet) {
	def := os.Getenv("AGENTRUNNER_SERVER")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	fs.StringVar(&a.Server, "server", def, "the runner's URL (env AGENTRUNNER_SERVER)")
	fs.StringVar(&a.Token, "token", "", "API token from `runner token create` (env AGENTRUNNER_TOKEN)")
}

// call does one API request and decodes the JSON answer into out; a non-2xx answer is an error
// carrying the server's message.
func (a *apiFlags) call(ctx context.Context, method, path string, body, out any) error {
	resp, err := a.request(ctx, method, path, body, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return apiAnswerError(method, path, resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if w, ok := out.(io.Writer); ok {
		_, err := w.Write(data)
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// apiAnswerError is the error of a non-2xx answer: the server's message when it sent one.
func apiAnswerError(method, path string, code int, data []byte) error {
	var e struct{ Error string }
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s (HTTP %d)", e.Error, code)
	}
	return fmt.Errorf("%s %s: HTTP %d: %s", method, path, code, strings.TrimSpace(string(data)))
}

// request sends one API request with the token and the extra header; the caller closes the
// answer's body.
func (a *apiFlags) request(ctx context.Context, method, path string, body any, header http.Header) (*http.Response, error) {
	tok := a.Token
	if tok == "" {
		tok = os.Getenv("AGENTRUNNER_TOKEN")
	}
	if tok == "" {
		return nil, usageError{fmt.Errorf("no API token: pass --token or set AGENTRUNNER_TOKEN (create one with `runner token create NAME`)")}
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(a.Server, "/")+path, rd)
	if err != nil {
		return nil, usageError{fmt.Errorf("--server %q: %w", a.Server, err)}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, a.Server+path, err)
	}
	return resp, nil
}

func newDispatchCmd(s *streams) *cobra.Command {
	var a apiFlags
	var inputs []string
	var prompt string
	var wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "dispatch OWNER/REPO ROUTINE",
		Short: "Start a routine on a running daemon through its API",
		Long: `Start ROUTINE of OWNER/REPO at the tip of its default branch on the daemon at --server. The
inputs are checked against the routine's dispatch.inputs before anything is queued. Prints the
run id; with --wait, waits for the run and exits 0 when it succeeded (or was neutral), 1 when it
did not, and 3 when --timeout passed first (the run goes on; 'runner runs RUN_ID' shows it).`,
		Args: argsUsage(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, routine := args[0], args[1]
			owner, name, ok := strings.Cut(repo, "/")
			if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
				return usageError{fmt.Errorf("repository %q: want OWNER/REPO", repo)}
			}
			in := map[string]string{}
			for _, kv := range inputs {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usageError{fmt.Errorf("--input %q: want NAME=value", kv)}
				}
				in[k] = v
			}
			in, err := withPrompt(in, prompt)
			if err != nil {
				return usageError{err}
			}
			var res daemon.DispatchResult
			path := "/api/v1/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(name) + "/routines/" + url.PathEscape(routine) + "/dispatch"
			if err := a.call(cmd.Context(), http.MethodPost, path, map[string]any{"inputs": in}, &res); err != nil {
				return err
			}
			fmt.Fprintf(s.Err, "dispatched %s of %s at %s (%s)\n", routine, repo, shortSHA(res.SHA), res.Branch)
			fmt.Fprintln(s.Out, res.RunID)
			if !wait {
				return nil
			}
			return waitConclusion(cmd.Context(), s, &a, res.RunID, timeout)
		},
	}
	a.add(cmd.Flags())
	cmd.Flags().StringArrayVar(&inputs, "input", nil, "a dispatch input NAME=value (repeatable)")
	cmd.Flags().StringVar(&prompt, "prompt", "", "a free-text task for a routine that declares a `prompt` input (--input prompt=…)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the run to finish")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "how long --wait waits")
	return cmd
}

// waitConclusion waits up to timeout for run id to finish and says how it ended: nil when it
// succeeded (or was neutral), errSilent (exit 1) when it did not, a waitTimeoutError (exit 3)
// when timeout passed first.
func waitConclusion(ctx context.Context, s *streams, a *apiFlags, id string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	run, err := waitRun(ctx, a, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.Err, "run %s %s: %s\n", run.ID, run.Status, run.Conclusion)
	if run.Conclusion != "success" && run.Conclusion != "neutral" {
		return errSilent
	}
	return nil
}

// waitRun polls a run until it is completed.
func waitRun(ctx context.Context, a *apiFlags, id string) (server.RunView, error) {
	for {
		var run server.RunView
		err := a.call(ctx, http.MethodGet, "/api/v1/runs/"+url.PathEscape(id), nil, &run)
		if err == nil && run.Status == store.RunCompleted {
			return run, nil
		}
		select {
		case <-ctx.Done():
			err := fmt.Errorf("wait for run %s: %w", id, ctx.Err())
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				err = waitTimeoutError{fmt.Errorf("run %s is still %s after --timeout; it goes on (see `runner runs %s`)", id, dash(run.Status), id)}
			}
			return run, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}
