package config

import (
	"fmt"
	"slices"
	"strings"
)

// WorkflowRules are what a workflow written by an orchestrating agent is read against: the
// routine and the agent that wrote it.
type WorkflowRules struct {
	// Image is its agents' image where it names none: the orchestrator's.
	Image string
	// Secrets are the secret names its agents may ask for: the routine's.
	Secrets []string
	// Depth is how many levels of orchestration the workflow may still start, counting itself:
	// 1 lets none of its agents orchestrate.
	Depth int
}

// workflowOnlyKeys are the routine keys a written workflow may not set, and why.
var workflowOnlyKeys = map[string]string{
	"on":          "the orchestrating routine's triggers start it",
	"secrets":     "its agents may ask only for the routine's secrets, listed in their own secrets:",
	"concurrency": "it runs inside the orchestrating run, which has the routine's concurrency",
	"publish":     "its changes join the orchestrating run's, which the routine publishes",
	"budget":      "its agents spend from the orchestrating run's budget",
	"connectors":  noWorkflowConnectors,
}

// workflowAgentKeys are the agent keys a written workflow's agents may not set, and why.
var workflowAgentKeys = map[string]string{
	"connectors": noWorkflowConnectors,
}

const noWorkflowConnectors = "connectors come from the routine that orchestrates, not from a generated workflow"

// ParseWorkflow decodes and validates a workflow an orchestrating agent wrote: the format of a
// routine file without on:, secrets:, concurrency: and publish:. Errors carry file:line:col, to
// hand back to the agent. The workflow's name is "workflow" unless it sets one.
func ParseWorkflow(file string, data []byte, w WorkflowRules) (*Routine, Errors) {
	d := newDecoder()
	d.workflow = &w
	return d.parse(file, data)
}

// workflowRules refuses the routine keys a workflow may not set and gives it what the
// orchestrating routine provides, before validation reads them.
func (d *decoder) workflowRules(r *Routine) {
	for _, k := range sortedKeys(workflowOnlyKeys) {
		if e, ok := d.key(r, k); ok {
			d.errorf(e.k, "a workflow an agent writes has no %s: %s; remove it", k, workflowOnlyKeys[k])
		}
	}
	for _, a := range r.Agents {
		for _, k := range sortedKeys(workflowAgentKeys) {
			if e, ok := d.key(a, k); ok {
				d.errorf(e.k, "agent %q: agents of a workflow an agent writes have no %s: %s; remove it", a.Name, k, workflowAgentKeys[k])
			}
		}
		a.Connectors = nil // refused above; not checked again
	}
	if _, ok := d.key(r, "name"); !ok {
		r.Name = "workflow"
	}
	r.Connectors = nil // refused above; not checked again
	r.On = Triggers{}
	r.Secrets = slices.Clone(d.workflow.Secrets)
	if r.Defaults.Image == "" {
		r.Defaults.Image = d.workflow.Image
	}
}

// sortedKeys returns m's keys in order, so messages come in the same order every time.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// DescribeWorkflowFormat is the workflow format in brief, for an orchestrating agent's prompt: every agent key
// with its description, taken from the same tables that decode the format and make its JSON
// Schema, so the text cannot drift from what the loader accepts.
func DescribeWorkflowFormat() string {
	var b strings.Builder
	b.WriteString("Top-level keys: name (optional), description, env, defaults (image, timeout, resources, network), max-fan-out, agents (required: a mapping from agent name to its settings).\n")
	b.WriteString("Agent keys:\n")
	for _, f := range agentObj.fields {
		if f.key == "orchestrate" {
			continue // described with the envelope, where it is allowed
		}
		if _, refused := workflowAgentKeys[f.key]; refused {
			continue
		}
		fmt.Fprintf(&b, "- %s: %s\n", f.key, f.doc)
	}
	return b.String()
}
