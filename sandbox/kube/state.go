package kube

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/agentrunner/agentrunner/sandbox"
)

// state is what a pod's status says of its agent.
type state struct {
	// running: the agent's container has started (its log can be followed).
	running bool
	// done: the agent ended, with outcome and exitCode, or the pod cannot go on (infra).
	done     bool
	outcome  sandbox.Outcome
	exitCode int
	started  time.Time
	finished time.Time
	// infra is why the infrastructure, not the agent, ended it: an eviction, a lost node, an
	// image the node cannot have, a workspace that could not be filled. The engine may retry.
	infra string
	// diskFull: evicted for writing past an emptyDir's sizeLimit — the agent's doing.
	diskFull bool
	// retry: the infrastructure lost the pod (not the agent, not a setting that fails again):
	// a new pod may succeed.
	retry bool
	// err: following the pod failed (the API, or the run's context).
	err error
}

// Waiting reasons that never clear by themselves: the pod is given up at once.
var hopeless = map[string]bool{
	"ErrImageNeverPull":          true,
	"InvalidImageName":           true,
	"ImagePullBackOff":           true,
	"ErrImagePull":               true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
}

// Termination reasons of a container whose command never ran (containerd's, Docker's).
var couldNotStart = map[string]bool{"StartError": true, "ContainerCannotRun": true}

// stateOf reads a pod's status: the state machine of one agent's pod.
func stateOf(p *corev1.Pod) state {
	var st state
	// The workspace's container: an init container in pods made before it became the first
	// of the pod's containers (a daemon may attach to those after an upgrade).
	for _, c := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		if c.Name != fetchContainer {
			continue
		}
		if t := c.State.Terminated; t != nil && t.ExitCode != 0 {
			st.done = true
			st.infra = fmt.Sprintf("filling the workspace failed (exit %d, %s): %s", t.ExitCode, t.Reason, strings.TrimSpace(t.Message))
			return st
		}
		if w := c.State.Waiting; w != nil && hopeless[w.Reason] {
			st.done = true
			st.infra = fmt.Sprintf("the runner's image cannot start (%s): %s", w.Reason, w.Message)
			return st
		}
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.Name != agentContainer {
			continue
		}
		if r := c.State.Running; r != nil {
			st.running, st.started = true, r.StartedAt.Time
		}
		if w := c.State.Waiting; w != nil && hopeless[w.Reason] {
			st.done = true
			st.infra = fmt.Sprintf("the agent's container cannot start (%s): %s", w.Reason, w.Message)
			return st
		}
		if t := c.State.Terminated; t != nil && couldNotStart[t.Reason] {
			// The runtime could not start the container's command: nothing of the agent ran
			// (an image without the runner where the pods expect it, for one).
			st.done = true
			st.infra = fmt.Sprintf("the agent's container could not start (%s): %s", t.Reason, strings.TrimSpace(t.Message))
			return st
		}
		if t := c.State.Terminated; t != nil {
			st.running, st.done = true, true
			st.started, st.finished, st.exitCode = t.StartedAt.Time, t.FinishedAt.Time, int(t.ExitCode)
			switch {
			case t.Reason == "OOMKilled":
				st.outcome = sandbox.OOM
			case t.ExitCode == 0:
				st.outcome = sandbox.Success
			default:
				st.outcome = sandbox.Failed
			}
		}
	}
	switch p.Status.Phase {
	case corev1.PodFailed:
		st.done = true
		switch {
		case p.Status.Reason == "DeadlineExceeded":
			st.outcome, st.infra = sandbox.TimedOut, ""
		case p.Status.Reason == "Evicted" && strings.Contains(p.Status.Message, "emptyDir"):
			st.outcome, st.diskFull, st.infra = sandbox.DiskLimit, true, ""
		case p.Status.Reason != "" && st.outcome == "":
			st.infra = fmt.Sprintf("the pod failed (%s): %s", p.Status.Reason, p.Status.Message)
			st.retry = p.Status.Reason == "Evicted" || p.Status.Reason == "NodeLost" || p.Status.Reason == "Shutdown" || p.Status.Reason == "Terminated"
		case st.outcome == "":
			st.infra = "the pod failed before its agent ended"
		}
	case corev1.PodSucceeded:
		st.done = true
		if st.outcome == "" {
			st.outcome = sandbox.Success
		}
	case corev1.PodUnknown:
		st.done, st.infra, st.retry = true, "the pod's node stopped reporting (node lost)", true
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && !st.done {
			st.done, st.infra, st.retry = true, fmt.Sprintf("the pod is being disrupted (%s): %s", c.Reason, c.Message), true
		}
	}
	return st
}
