package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/internal/safefile"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/server"
)

func init() { register(newSaveWorkflowCmd) }

func newSaveWorkflowCmd(s *streams) *cobra.Command {
	var a apiFlags
	var dir, name string
	cmd := &cobra.Command{
		Use:   "save-workflow RUN_ID AGENT",
		Short: "Print the workflow an orchestrating agent wrote in a past run as a routine file to commit",
		Long: `Print the workflow AGENT wrote in run RUN_ID (the one that ran, after any refused attempts) as a
routine file: the workflow as written, named, with an on: {dispatch: {}} trigger to start from and
the image its agents ran with. A run of 'runner exec' is read from .agents/.runs/ in the
repository; any other from the daemon at --server.

  runner save-workflow r7f3c2a migrate > .agents/migrate-services.yaml`,
		Args: argsUsage(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			runID, agent := args[0], args[1]
			wf, image, err := generatedWorkflow(cmd.Context(), &a, dir, runID, agent)
			if err != nil {
				return err
			}
			if name == "" {
				name = strings.ReplaceAll(agent, "/", "-")
			}
			out, err := routineFromWorkflow(wf, name, image, runID, agent)
			if err != nil {
				return err
			}
			_, err = s.Out.Write(out)
			return err
		},
	}
	a.add(cmd.Flags())
	cmd.Flags().StringVarP(&dir, "dir", "C", ".", "the repository whose .agents/.runs/ holds runner exec's runs")
	cmd.Flags().StringVar(&name, "name", "", "the routine's name (default: the agent's)")
	return cmd
}

// generatedWorkflow finds the workflow agent wrote in run runID and the image its agents
// defaulted to: from runner exec's run directory when the run is there, else from the daemon.
func generatedWorkflow(ctx context.Context, a *apiFlags, dir, runID, agent string) (string, string, error) {
	if !filepath.IsLocal(runID) || strings.ContainsAny(runID, `/\`) {
		return "", "", usageError{fmt.Errorf("run id %q is not one", runID)}
	}
	var jobs []server.JobView
	var planJSON []byte
	if root, err := repoRoot(ctx, dir); err == nil {
		runDir := filepath.Join(root, ".agents", ".runs", runID)
		if b, err := safefile.Read(runDir, "result.json", 64<<20); err == nil {
			var res struct {
				Jobs []server.JobView `json:"jobs"`
			}
			if err := json.Unmarshal(b, &res); err != nil {
				return "", "", fmt.Errorf("%s: %w", filepath.Join(runDir, "result.json"), err)
			}
			jobs = res.Jobs
			planJSON, _ = safefile.Read(runDir, "plan.json", 64<<20)
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", "", err
		}
	}
	if jobs == nil {
		var v server.RunView
		if err := a.call(ctx, http.MethodGet, "/api/v1/runs/"+url.PathEscape(runID), nil, &v); err != nil {
			return "", "", err
		}
		jobs, planJSON = v.Jobs, v.Plan
	}
	wf := ""
	for _, j := range jobs {
		if j.Agent == agent && j.Workflow != "" {
			wf = j.Workflow
		}
	}
	if wf == "" {
		return "", "", fmt.Errorf("run %s has no workflow written by %q (an agent with orchestrate: whose workflow ran; 'runner runs %s' lists its jobs)", runID, agent, runID)
	}
	var p plan.Run
	_ = json.Unmarshal(planJSON, &p)
	image := ""
	for _, n := range p.Nodes {
		if n.Agent == agent && n.Orchestrate != nil {
			image = n.Orchestrate.Image
		}
	}
	return wf, image, nil
}

// routineFromWorkflow makes the routine file: the workflow's own text under a header, with the
// name, trigger and default image it lacks. The result is checked with the same loader as
// every routine.
func routineFromWorkflow(wf, name, image, runID, agent string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(wf), &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("the workflow of %s in run %s is not a YAML mapping", agent, runID)
	}
	has := map[string]bool{}
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		has[top.Content[i].Value] = true
		if top.Content[i].Value == "defaults" {
			for j := 0; j+1 < len(top.Content[i+1].Content); j += 2 {
				has["defaults."+top.Content[i+1].Content[j].Value] = true
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by agent %s in run %s; saved by `runner save-workflow %s %s`.\n", agent, runID, runID, agent)
	b.WriteString("# Review it, give it the triggers it needs, and commit it.\n")
	if !has["name"] {
		fmt.Fprintf(&b, "name: %s\n", name)
	}
	b.WriteString("on:\n  dispatch: {}\n")
	if image != "" && !has["defaults.image"] {
		if has["defaults"] {
			return nil, fmt.Errorf("the workflow sets defaults: but no image; its agents ran with %s: add it as defaults.image", image)
		}
		fmt.Fprintf(&b, "defaults:\n  image: %s\n", image)
	}
	b.WriteString(strings.TrimRight(wf, "\n") + "\n")
	out := []byte(b.String())
	if _, errs := config.Parse(name+".yaml", out); len(errs) > 0 {
		return nil, fmt.Errorf("the saved routine does not load:\n%v", errs)
	}
	return out, nil
}
