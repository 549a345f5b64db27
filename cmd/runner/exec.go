package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/internal/english"
	"github.com/agentrunner/agentrunner/internal/termsafe"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/plan"
)

func init() { register(newExecCmd) }

// execOptions are `runner exec`'s flags.
type execOptions struct {
	Routine            string
	Dir                string
	Event              string
	EventFile          string
	Inputs             []string
	Prompt             string
	DryRun             bool
	JSON               bool
	Progress           string
	Secrets            []string
	SecretsFile        string
	Apply              string
	IncludeUncommitted bool
	MaxAgents          int
	Image              string
	Workspace          string
}

func newExecCmd(s *streams) *cobra.Command {
	o := &execOptions{}
	cmd := &cobra.Command{
		Use:   "exec [ROUTINE]",
		Short: "Run routines from .agents/ locally in Docker (or show the plan with --dry-run)",
		Long: `Run the routines of the repository in the current directory the way the daemon would,
each agent in its own hardened Docker container on its own git workspace.

The event is built from the local repository (HEAD, the current branch, the files changed
against the default branch) unless --event-file gives a real GitHub webhook payload.
Results land in .agents/.runs/<run-id>/: logs, outputs, reports, one patch per agent and
the combined patch.`,
		Example: `  runner exec --dry-run
  runner exec pr-review --event pull_request
  runner exec nightly-audit --secret ANTHROPIC_API_KEY
  runner exec --event-file push.json --dry-run --json`,
		Args: argsUsage(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.Routine = args[0]
			}
			return runExec(cmd.Context(), s, o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Dir, "dir", "C", ".", "the repository to run in")
	f.StringVar(&o.Event, "event", "", "event to simulate: push, pull_request, schedule, dispatch (default: push, or the kind of --event-file)")
	f.StringVar(&o.EventFile, "event-file", "", "a GitHub webhook payload (JSON) to replay instead of the local repository's state")
	f.StringArrayVar(&o.Inputs, "input", nil, "dispatch input `key=value` (repeatable)")
	f.StringVar(&o.Prompt, "prompt", "", "a free-text task for a routine that declares a `prompt` dispatch input (--input prompt=…)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the plan; run nothing")
	f.BoolVar(&o.JSON, "json", false, "print the plan (with --dry-run) or progress as JSON")
	f.StringVar(&o.Progress, "progress", "auto", "progress display: auto, tty or plain")
	f.StringArrayVar(&o.Secrets, "secret", nil, "pass secret `NAME` from the environment (repeatable)")
	f.StringVar(&o.SecretsFile, "secrets-file", "", "read secrets from a `file` of NAME=value lines")
	f.StringVar(&o.Apply, "apply", "", "apply the combined patch to the working tree after the run; =all also when it changes "+
		".agents/, .github/, .vscode/, .envrc, .git* files or symlinks out of the repository")
	f.Lookup("apply").NoOptDefVal = applySafe
	f.BoolVar(&o.IncludeUncommitted, "include-uncommitted", false, "run on the working tree as it is, not HEAD")
	f.IntVar(&o.MaxAgents, "max-agents", 8, "containers running at once")
	f.StringVar(&o.Workspace, "workspace", workspaceAuto, "how agents' workspaces are made: overlay (a copy-on-write layer over one shared checkout, "+
		"O(changed files)), checkout (a full checkout each), or auto (overlay where the Docker engine can mount it)")
	return cmd
}

func runExec(ctx context.Context, s *streams, o *execOptions) error {
	switch o.Progress {
	case "auto", "tty", "plain":
	default:
		return usageError{fmt.Errorf("--progress must be auto, tty or plain, not %q", o.Progress)}
	}
	if err := checkWorkspaceMode("--workspace", o.Workspace); err != nil {
		return err
	}
	if o.MaxAgents < 1 {
		return usageError{fmt.Errorf("--max-agents %d: at least one agent must be able to run; pass 1 or more (default 8)", o.MaxAgents)}
	}
	switch o.Apply {
	case "", applySafe, applyAll:
	default:
		return usageError{fmt.Errorf("--apply takes no value or =all, not %q", o.Apply)}
	}
	inputs, err := parseInputs(o.Inputs)
	if err == nil {
		inputs, err = withPrompt(inputs, o.Prompt)
	}
	if err != nil {
		return usageError{err}
	}
	root, err := repoRoot(ctx, o.Dir)
	if err != nil {
		return err
	}
	agentsDir := filepath.Join(root, ".agents")
	cfg, err := config.Load(agentsDir)
	if err != nil {
		var ce config.Errors
		if errors.As(err, &ce) {
			printConfigErrors(s.Err, ce)
			return errSilent
		}
		return err
	}
	if errs := plan.Compile(cfg); len(errs) > 0 {
		printConfigErrors(s.Err, errs)
		return errSilent
	}
	printConfigErrors(s.Err, unqualifiedImages(cfg))
	if o.Routine != "" && cfg.Routine(o.Routine) == nil {
		return fmt.Errorf("no routine %q in %s (have: %s)", o.Routine, agentsDir, strings.Join(routineNames(cfg), ", "))
	}
	ev, err := buildEvent(ctx, root, o, inputs)
	if err != nil {
		return err
	}
	p, err := plan.Build(cfg, ev, plan.Options{Routine: o.Routine, Inputs: inputs})
	if err != nil {
		return err
	}
	if o.DryRun {
		if o.JSON {
			enc := json.NewEncoder(s.Out)
			enc.SetIndent("", "  ")
			return enc.Encode(p)
		}
		printPlan(s.Out, cfg, ev, p, o.Routine)
		return nil
	}
	if len(p.Runs) == 0 {
		fmt.Fprintf(s.Err, "no routine matches this %s event:\n", ev.Kind)
		for _, sk := range p.Skipped {
			fmt.Fprintf(s.Err, "  %s: %s\n", termsafe.Line(sk.Routine), termsafe.Line(sk.Reason))
		}
		fmt.Fprintln(s.Err, "(`runner exec --dry-run` shows the event; --event simulates another kind)")
		return nil
	}
	return execRuns(ctx, s, o, root, ev, p)
}

// buildEvent makes the event from a payload file or from the local repository.
func buildEvent(ctx context.Context, root string, o *execOptions, inputs map[string]string) (*event.Event, error) {
	kind := o.Event
	if o.EventFile == "" {
		if kind == "" {
			kind = event.KindPush
			if o.Routine != "" && len(inputs) > 0 {
				kind = event.KindDispatch
			}
		}
		ev, err := event.FromLocalRepo(ctx, root, kind)
		if err != nil {
			return nil, fmt.Errorf("build a %s event from %s: %w", kind, root, err)
		}
		if kind == event.KindDispatch {
			ev.Routine, ev.Inputs = o.Routine, inputs
		}
		return ev, nil
	}
	body, err := os.ReadFile(o.EventFile)
	if err != nil {
		return nil, fmt.Errorf("read event file: %w", err)
	}
	if kind == "" {
		kind = guessKind(body)
		if kind == "" {
			return nil, usageError{fmt.Errorf("%s: cannot tell which GitHub event this payload is; pass --event", o.EventFile)}
		}
	}
	ev, err := event.FromGitHub(kind, "local-"+filepath.Base(o.EventFile), body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.EventFile, err)
	}
	return ev, nil
}

// guessKind recognises a webhook payload by the keys only that event has.
func guessKind(body []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	has := func(k string) bool { _, ok := m[k]; return ok }
	switch {
	case has("pull_request") && !has("comment"):
		return event.KindPullRequest
	case has("comment") && has("issue"):
		return event.KindIssueComment
	case has("check_run"):
		return event.KindCheckRun
	case has("check_suite"):
		return event.KindCheckSuite
	case has("ref") && has("before") && has("after"):
		return event.KindPush
	}
	return ""
}

func parseInputs(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--input %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

// withPrompt adds --prompt to the inputs as the input named prompt, the one way a free-text
// task reaches a routine (the API's "prompt" and the control room's Run form do the same).
func withPrompt(inputs map[string]string, prompt string) (map[string]string, error) {
	if prompt == "" {
		return inputs, nil
	}
	if _, set := inputs["prompt"]; set {
		return nil, fmt.Errorf("--prompt and --input prompt=… both give the prompt; keep one")
	}
	if inputs == nil {
		inputs = map[string]string{}
	}
	inputs["prompt"] = prompt
	return inputs, nil
}

// repoRoot finds the top of the git repository containing dir.
func repoRoot(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Errorf("%s is not inside a git repository (runner exec runs routines of a repository's .agents/)", dir)
	}
	root := strings.TrimSpace(string(out))
	if _, err := os.Stat(filepath.Join(root, ".agents")); err != nil {
		return "", fmt.Errorf("%s has no .agents/ directory; see examples/ for routines to start from", root)
	}
	return root, nil
}

func routineNames(cfg *config.Config) []string {
	names := make([]string, len(cfg.Routines))
	for i, r := range cfg.Routines {
		names[i] = r.Name
	}
	return names
}

func printConfigErrors(w io.Writer, errs config.Errors) {
	cwd, _ := os.Getwd()
	for _, e := range errs {
		c := *e
		if rel, err := filepath.Rel(cwd, c.Pos.File); err == nil && !strings.HasPrefix(rel, "..") {
			c.Pos.File = rel
		}
		fmt.Fprintln(w, c.Error())
	}
}

// printPlan shows the plan for a person: what fires and why the rest does not, each agent's
// expansion, and what gets published.
func printPlan(w io.Writer, cfg *config.Config, ev *event.Event, p *plan.Plan, only string) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	fmt.Fprintf(bw, "event: %s", ev.Kind)
	if ev.Action != "" {
		fmt.Fprintf(bw, " (%s)", ev.Action)
	}
	// The event's names come from the repository or a payload: escaped like agents' text.
	if ev.Branch != "" {
		fmt.Fprintf(bw, " on %s", termsafe.Line(ev.Branch))
	}
	if ev.Tag != "" {
		fmt.Fprintf(bw, " tag %s", termsafe.Line(ev.Tag))
	}
	if ev.PullRequest != nil {
		fmt.Fprintf(bw, " #%d %s → %s", ev.PullRequest.Number, termsafe.Line(ev.PullRequest.HeadRef), termsafe.Line(ev.PullRequest.BaseRef))
	}
	fmt.Fprintf(bw, " at %s", termsafe.Line(shortSHA(ev.SHA)))
	if ev.ChangedFiles != nil {
		fmt.Fprintf(bw, ", %s", english.Count(len(ev.ChangedFiles), "changed file"))
	}
	fmt.Fprintln(bw)

	fired := map[string]bool{}
	for _, r := range p.Runs {
		fired[r.Routine] = true
	}
	for _, r := range cfg.Routines {
		if fired[r.Name] || (only != "" && r.Name != only) {
			continue
		}
		_, why := event.Match(&r.On, ev)
		if why == "" {
			why = "not triggered by this event"
		}
		fmt.Fprintf(bw, "\n○ %s: skipped: %s\n", r.Name, termsafe.Line(why))
	}
	for _, r := range p.Runs {
		fmt.Fprintf(bw, "\n● %s  (%s)\n", r.Routine, relPath(r.File))
		if r.Concurrency != nil {
			fmt.Fprintf(bw, "  concurrency: %s", r.Concurrency.Group)
			if r.Concurrency.CancelInProgress {
				fmt.Fprint(bw, " (cancels in-progress runs)")
			}
			fmt.Fprintln(bw)
		}
		if len(r.Secrets) > 0 {
			fmt.Fprintf(bw, "  secrets: %s\n", strings.Join(r.Secrets, ", "))
		}
		for _, c := range r.Connectors {
			fmt.Fprintf(bw, "  connector %s: %s\n", c.Name, termsafe.Line(describeConnector(c)))
		}
		for i, n := range r.Nodes {
			fmt.Fprintf(bw, "  %d. %s", i+1, n.Agent)
			if len(n.Needs) > 0 {
				fmt.Fprintf(bw, "  needs %s", strings.Join(n.Needs, ", "))
			}
			if n.If != "" {
				fmt.Fprintf(bw, "  if %s", n.If)
			}
			fmt.Fprintln(bw)
			fmt.Fprintf(bw, "     %s\n", describeNode(n))
			if o := n.Orchestrate; o != nil {
				fmt.Fprintf(bw, "     orchestrates: writes a workflow that expands at run time, within images %s, %d instances in all (%d per agent), network %s, %s, %s, depth %d\n",
					termsafe.Line(strings.Join(o.Images, ", ")), o.MaxAgents, o.MaxInstances, describeNetworkOf(o.Network), o.Timeout,
					english.Count(o.Retries+1, "attempt"), o.MaxDepth)
			}
			for j, in := range n.Instances {
				if j == 8 && len(n.Instances) > 10 {
					fmt.Fprintf(bw, "     … %d more\n", len(n.Instances)-8)
					break
				}
				fmt.Fprintf(bw, "     - %-22s %s  timeout %s  network %s\n", termsafe.Line(in.ID), termsafe.Line(in.Image), in.Timeout, describeNetwork(in))
				if j == 0 {
					fmt.Fprintf(bw, "       argv: %s\n", quoteArgv(in.Argv, 100))
					if len(in.Connectors) > 0 {
						fmt.Fprintf(bw, "       connectors: %s ($AGENT_MCP_CONFIG)\n", strings.Join(in.Connectors, ", "))
					}
					if in.Prompt != "" {
						fmt.Fprintf(bw, "       prompt: %s\n", oneLine(in.Prompt, 100))
					}
				}
			}
		}
		fmt.Fprintf(bw, "  publish: %s\n", describePublish(r))
	}
	if len(p.Runs) == 0 {
		fmt.Fprintln(bw, "\nnothing runs for this event")
	}
}

// describeConnector says in one line what the runner does for connector c.
func describeConnector(c *config.Connector) string {
	var b strings.Builder
	if c.URL != "" {
		fmt.Fprintf(&b, "remote %s through the egress proxy", c.URL)
		if c.Secret != "" {
			fmt.Fprintf(&b, ", which adds secret %s", c.Secret)
		}
	} else {
		fmt.Fprintf(&b, "sidecar from %s", c.Image)
		if len(c.Command) > 0 {
			fmt.Fprintf(&b, " running %s", quoteArgv(c.Command, 60))
		}
		fmt.Fprint(&b, " behind the runner's MCP bridge")
		if len(c.Secrets) > 0 {
			fmt.Fprintf(&b, ", secrets %s", strings.Join(c.Secrets, ", "))
		}
		if c.Network != nil && c.Network.Mode == config.NetworkAllow {
			fmt.Fprintf(&b, ", egress to %s", strings.Join(c.Network.Allow, ", "))
		}
	}
	if len(c.Tools) > 0 {
		fmt.Fprintf(&b, "; tools %s only", strings.Join(c.Tools, ", "))
	}
	return b.String()
}

func describeNode(n *plan.Node) string {
	var parts []string
	switch {
	case n.Dynamic:
		parts = append(parts, fmt.Sprintf("dynamic: expanded when %s finish (preview %d)", strings.Join(n.Needs, ", "), len(n.Instances)))
	case len(n.Instances) == 1:
		parts = append(parts, "1 job")
	default:
		parts = append(parts, fmt.Sprintf("%d jobs", len(n.Instances)))
	}
	if n.MaxParallel > 0 {
		parts = append(parts, fmt.Sprintf("max-parallel %d", n.MaxParallel))
	}
	if n.Replicas > 1 {
		s := fmt.Sprintf("%d replicas", n.Replicas)
		if n.Quorum > 0 {
			s += fmt.Sprintf(", quorum %d on %s", n.Quorum, n.Vote)
		}
		if n.Judge != "" {
			s += ", judged by " + n.Judge
		}
		parts = append(parts, s)
	}
	if n.FailFast {
		parts = append(parts, "fail-fast")
	}
	if n.ContinueOnError {
		parts = append(parts, "continue-on-error")
	}
	parts = append(parts, "changes "+n.Changes)
	return strings.Join(parts, " · ")
}

func describeNetwork(in *plan.Instance) string { return describeNetworkOf(in.Network) }

func describeNetworkOf(n config.Network) string {
	if n.Mode == config.NetworkAllow {
		return "allow " + strings.Join(n.Allow, ",")
	}
	return n.Mode
}

func describePublish(r *plan.Run) string {
	var parts []string
	if r.Publish.Check {
		parts = append(parts, "check run agents/"+r.Routine)
	}
	if pr := r.Publish.PullRequest; pr != nil {
		s := fmt.Sprintf("pull request %q on agents/%s/%s", pr.Title, r.Routine, pr.Key)
		if pr.Draft {
			s += " (draft)"
		}
		parts = append(parts, s)
	}
	if r.Publish.Comment {
		parts = append(parts, "PR comment")
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func quoteArgv(argv []string, limit int) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = oneLine(a, 40)
		if strings.ContainsAny(a, " \t\"'") {
			q[i] = fmt.Sprintf("%q", oneLine(a, 40))
		}
	}
	return oneLine(strings.Join(q, " "), limit)
}

// oneLine shows s (a prompt or argument, which templates fill from the event) on one line of
// at most limit runes, escaped for the terminal.
func oneLine(s string, limit int) string {
	s = termsafe.Line(strings.Join(strings.Fields(s), " "))
	if r := []rune(s); len(r) > limit {
		return string(r[:limit-1]) + "…"
	}
	return s
}

func relPath(p string) string {
	cwd, _ := os.Getwd()
	if rel, err := filepath.Rel(cwd, p); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return p
}

func shortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}
