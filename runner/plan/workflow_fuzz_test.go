package plan

import (
	"errors"
	"strings"
	"testing"
)

// A workflow is text an agent wrote: whatever it holds, BuildWorkflow returns a workflow or a
// *WorkflowError listing problems, never panics, and never plans past the envelope.
func FuzzBuildWorkflow(f *testing.F) {
	for _, s := range []string{
		threeStages, "agents: {a: {command: [x]\n", "", "on: push\nsecrets: [X]\nagents: {a: {command: [x]}}\n",
		"agents:\n  a: {command: [x], orchestrate: true}\n", "agents:\n  a: {command: [x], replicas: 99, vote: v}\n",
		"agents:\n  a: {command: [\"${{ needs.b.outputs.x }}\"], needs: b}\n  b: {command: [y], needs: a}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n := orchestrator(t, "migrate")
		wf, err := n.BuildWorkflow("workflow.yaml", data)
		if err != nil {
			var we *WorkflowError
			if !errors.As(err, &we) || len(we.Problems) == 0 {
				t.Fatalf("error %v is not a list of problems", err)
			}
			return
		}
		total := 0
		for _, sub := range wf.Nodes {
			if !strings.HasPrefix(sub.Agent, "migrate/") {
				t.Fatalf("node %q is not under the orchestrator", sub.Agent)
			}
			for _, in := range sub.Instances {
				if !sub.Dynamic && !strings.HasPrefix(in.ID, "migrate/") {
					t.Fatalf("instance %q is not under the orchestrator", in.ID)
				}
				if in.Image != "orch:1" && in.Image != "worker:2" && !sub.Dynamic {
					t.Fatalf("instance %q runs image %q outside the envelope", in.ID, in.Image)
				}
			}
			if !sub.Dynamic {
				total += len(sub.Instances)
			}
		}
		if total > n.Orchestrate.MaxAgents {
			t.Fatalf("%d instances planned past max-agents %d", total, n.Orchestrate.MaxAgents)
		}
	})
}
