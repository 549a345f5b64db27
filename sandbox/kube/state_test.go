package kube

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentrunner/agentrunner/sandbox"
)

// Outcomes are mapped as in Docker: the kernel's OOM kill, the API server's deadline, the
// kubelet's eviction for an emptyDir past its size limit are the agent's; a lost node, a
// disruption, a workspace that could not be filled are the infrastructure's.
func TestPodStatusesMapToOutcomes(t *testing.T) {
	agent := func(s corev1.ContainerState) []corev1.ContainerStatus {
		return []corev1.ContainerStatus{{Name: agentContainer, State: s}}
	}
	term := func(code int32, reason string) corev1.ContainerState {
		return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason}}
	}
	for _, tc := range []struct {
		name    string
		status  corev1.PodStatus
		done    bool
		outcome sandbox.Outcome
		infra   string
	}{
		{"pending", corev1.PodStatus{Phase: corev1.PodPending}, false, "", ""},
		{"running", corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: agent(corev1.ContainerState{Running: &corev1.ContainerStateRunning{}})}, false, "", ""},
		{"success", corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: agent(term(0, "Completed"))}, true, sandbox.Success, ""},
		{"failed", corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: agent(term(2, "Error"))}, true, sandbox.Failed, ""},
		{"oom", corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: agent(term(137, "OOMKilled"))}, true, sandbox.OOM, ""},
		{"deadline", corev1.PodStatus{Phase: corev1.PodFailed, Reason: "DeadlineExceeded", ContainerStatuses: agent(term(137, "Error"))}, true, sandbox.TimedOut, ""},
		{"disk", corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "Usage of EmptyDir volume \"workspace\" exceeds the limit \"2Gi\". emptyDir"}, true, sandbox.DiskLimit, ""},
		{"evicted", corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "The node was low on resource: memory."}, true, "", "Evicted"},
		{"node lost", corev1.PodStatus{Phase: corev1.PodUnknown}, true, "", "node lost"},
		{"disrupted", corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "DeletionByTaintManager"}}}, true, "", "DeletionByTaintManager"},
		{"fetch failed (init container of an older daemon)", corev1.PodStatus{Phase: corev1.PodFailed, InitContainerStatuses: []corev1.ContainerStatus{{Name: fetchContainer, State: term(1, "Error")}}}, true, "", "filling the workspace failed"},
		// The kubelet starts the agent's container after a failed hook; the agent's side refuses
		// (125), and the workspace's failure is the pod's story, not the agent's.
		{"fetch failed", corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{
			{Name: agentContainer, State: term(125, "Error")}, {Name: fetchContainer, State: term(1, "Error")}}}, true, "", "filling the workspace failed"},
		{"filled, agent running", corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: agentContainer, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}, {Name: fetchContainer, State: term(0, "Completed")}}}, false, "", ""},
		{"runner image missing", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{
			{Name: fetchContainer, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull"}}}}}, true, "", "runner's image cannot start"},
		// An agent image without the runner where a one-container pod expects it.
		{"command never started", corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: agent(corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 128, Reason: "StartError", Message: `exec: "/.agentrunner/runner": stat /.agentrunner/runner: no such file or directory`}})}, true, "", "/.agentrunner/runner: no such file"},
		{"config error", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: agent(corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError"}})}, true, "", "CreateContainerConfigError"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := stateOf(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: tc.status})
			if st.done != tc.done || st.outcome != tc.outcome || (tc.infra == "") != (st.infra == "") || !strings.Contains(st.infra, tc.infra) {
				t.Errorf("state %+v, want done %v, outcome %q, infra %q", st, tc.done, tc.outcome, tc.infra)
			}
		})
	}
}

// A log stream resumed after a dropped connection starts at a whole second: the lines written
// already are skipped, lines sharing the last one's timestamp included; the timestamps the
// kubelet adds are not written.
func TestAResumedLogSkipsWhatWasWritten(t *testing.T) {
	var out strings.Builder
	f := &follower{w: &out}
	f.copy(strings.NewReader("2026-12-06T20:00:00.100Z one\n2026-12-06T20:00:00.200Z two\n2026-12-06T20:00:00.200Z two again\n"))
	f.copy(strings.NewReader("2026-12-06T20:00:00.100Z one\n2026-12-06T20:00:00.200Z two\n2026-12-06T20:00:00.200Z two again\n2026-12-06T20:00:00.200Z three\n2026-12-06T20:00:01.000Z four\n"))
	if got, want := out.String(), "one\ntwo\ntwo again\nthree\nfour\n"; got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
}
