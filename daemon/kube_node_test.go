package daemon

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/internal/kubetest"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/sandbox/kube"
	"github.com/agentrunner/agentrunner/store"
)

// nodeDaemon is `runner serve` with `sandbox: kubernetes` whose agents run as real pods on the
// test's node (kubelet, containerd): the runner and test agent images imported into the node,
// the exchange on the node's link to the host, and a canary there that the pods' network
// policy must cut off before an agent starts.
func nodeDaemon(t *testing.T, id, repoDir string, maxAgents int) (*daemonProc, store.Store, kubernetes.Interface) {
	t.Helper()
	c, admin := kwokCluster(t)
	node := c.Node(t)
	runnerImage := kubetest.RunnerImage(t)
	node.Import(t, runnerImage, dockertest.TestAgentImage(t))
	exchange := hostPort(t, node.HostIP)
	canary := node.AcceptAll(t)
	proc, st := kubeDaemonWith(t, c, id, repoDir, maxAgents, fmt.Sprintf(`  runner-image: %s
  exchange-listen: %q
  exchange-url: "http://%s"
  policy-canary: %q
  node-selector: {%s: "true"}
`, runnerImage, exchange, exchange, canary, kubetest.RealNodeLabel))
	return proc, st, admin
}

// hostPort is a free port on host.
func hostPort(t *testing.T, host string) string {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// realFanOut is n agents of one matrix, each a real container writing its report, and a
// consolidating step after them; the agents first sleep for hold. Small requests, so that the
// node (2 CPUs here) schedules them all at once.
func realFanOut(n int, hold time.Duration) string {
	shards := make([]string, n)
	for i := range shards {
		shards[i] = strconv.Itoa(i)
	}
	return fmt.Sprintf(`name: fanout
on: {dispatch: {}}
defaults: {image: %s, pull-policy: never, timeout: 5m, network: none, resources: {cpus: 0.1, memory: 64m}}
agents:
  audit:
    command: [/testagent, sleep, %s, write, audited.txt=yes, report, audited]
    matrix: {shard: [%s]}
    max-parallel: %d
  consolidate:
    needs: [audit]
    command: [/testagent, report, consolidated]
`, dockertest.TestAgentTag, hold, strings.Join(shards, ", "), n)
}

// creations counts the pods created in the agents' namespace, by name, from a watch.
type creations struct {
	mu    sync.Mutex
	count map[string]int
}

func watchCreations(t *testing.T, admin kubernetes.Interface) *creations {
	c := &creations{count: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	w, err := admin.CoreV1().Pods(agentsNamespace).Watch(ctx, metav1.ListOptions{LabelSelector: kube.LabelRun})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Added {
				c.mu.Lock()
				c.count[p.Name]++
				c.mu.Unlock()
			}
		}
	}()
	return c
}

func (c *creations) of(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count[name]
}

// A fan-out workflow with its consolidating step, every agent a real container in a real pod
// (kubelet, containerd, runc) confined by its NetworkPolicy: all succeed with their reports,
// and nothing of the run is left in the cluster.
func TestKubernetesFanOutOnARealNode(t *testing.T) {
	const n = 6
	repoDir, _ := gittest.Repo(t, map[string]string{".agents/fanout.yaml": realFanOut(n, 0)})
	proc, st, admin := nodeDaemon(t, "node-fanout", repoDir, n)
	proc.start()
	start := time.Now()
	runID := dispatch(t, st, proc.addr, "fanout")
	waitRunCompleted(t, st, runID, 4*time.Minute)
	res := runResult(t, proc, runID)
	if res.Conclusion != result.ConclusionSuccess || len(res.Jobs) != n+1 {
		t.Fatalf("run %s with %d jobs, want success with %d:\n%s\n%s", res.Conclusion, len(res.Jobs), n+1, res.Report, proc.logs())
	}
	for _, j := range res.Jobs {
		want := "audited"
		if strings.HasPrefix(j.ID, "consolidate") {
			want = "consolidated"
		}
		if j.Outcome != result.Success || strings.TrimSpace(j.Report) != want {
			t.Errorf("job %s: %s, report %q, want success with %q (%s)", j.ID, j.Outcome, j.Report, want, j.Error)
		}
	}
	t.Logf("%d agents as real pods: %s", n+1, time.Since(start).Round(time.Millisecond))
	proc.signal(syscall.SIGTERM)
	assertNoPodsLeft(t, admin, runID)
}

// An allow-listed agent through `runner serve` on a real node: the daemon starts the run's
// egress proxy as a pod, the agent reaches out through it (a destination off its allow list is
// refused there, and the job's result lists it), and the proxy's pod goes with the run.
func TestKubernetesAllowListedAgentOnARealNode(t *testing.T) {
	offList := "10.231.255.1:8443" // never dialed: the proxy refuses it by name first
	repoDir, _ := gittest.Repo(t, map[string]string{".agents/egress.yaml": fmt.Sprintf(`name: egress
on: {dispatch: {}}
defaults: {image: %s, pull-policy: never, timeout: 5m, resources: {cpus: 0.1, memory: 64m}}
agents:
  fetcher:
    network: {allow: ["api.github.com:443"]}
    command: [/testagent, fetch, "http://%s/x", report, fetched]
`, dockertest.TestAgentTag, offList)})
	proc, st, admin := nodeDaemon(t, "node-egress", repoDir, 2)
	proc.start()
	runID := dispatch(t, st, proc.addr, "egress")
	waitRunCompleted(t, st, runID, 4*time.Minute)
	res := runResult(t, proc, runID)
	if res.Conclusion != result.ConclusionSuccess || len(res.Jobs) != 1 {
		t.Fatalf("run %s with %d jobs:\n%s\n%s", res.Conclusion, len(res.Jobs), res.Report, proc.logs())
	}
	j := res.Jobs[0]
	if !strings.Contains(strings.Join(j.Blocked, " "), offList) {
		t.Errorf("blocked %q, want %s refused by the run's proxy\n%s", j.Blocked, offList, proc.logs())
	}
	if !strings.Contains(proc.logs(), "egress proxy pod dialed in") {
		t.Errorf("the daemon never started a proxy pod:\n%s", proc.logs())
	}
	proc.signal(syscall.SIGTERM)
	assertNoPodsLeft(t, admin, runID)
}

// kill -9 of the daemon while its agents run in real pods: the daemon started again attaches to
// the running pods (each created once), takes their changes when the agents end, and the run
// succeeds.
func TestKillNineWhileAgentsRunInRealPods(t *testing.T) {
	const n = 3
	repoDir, _ := gittest.Repo(t, map[string]string{".agents/fanout.yaml": realFanOut(n, 30*time.Second)})
	proc, st, admin := nodeDaemon(t, "node-kill", repoDir, n)
	created := watchCreations(t, admin)
	proc.start()
	runID := dispatch(t, st, proc.addr, "fanout")
	sel := metav1.ListOptions{LabelSelector: kube.LabelRun + "=" + kube.LabelValue(runID)}
	var seen string
	defer func() {
		if t.Failed() {
			t.Logf("pods last seen: %s\n%s", seen, proc.logs())
		}
	}()
	waitFor(t, "every agent's container to start", 3*time.Minute, func() bool {
		pods, err := admin.CoreV1().Pods(agentsNamespace).List(context.Background(), sel)
		if err != nil || len(pods.Items) != n {
			seen = fmt.Sprintf("%d pods, %v", len(pods.Items), err)
			return false
		}
		// Every agent's container started and one at least still running: on a loaded machine
		// the first may end before the last starts.
		seen = ""
		running := 0
		for _, p := range pods.Items {
			seen += fmt.Sprintf("%s %s %+v; ", p.Name, p.Status.Phase, p.Status.ContainerStatuses)
		}
		for _, p := range pods.Items {
			var state *corev1.ContainerState
			for _, c := range p.Status.ContainerStatuses {
				if c.Name == "agent" {
					state = &c.State
				}
			}
			switch {
			case state == nil:
				return false
			case state.Running != nil:
				running++
			case state.Terminated == nil:
				return false
			}
		}
		return running > 0
	})
	proc.signal(syscall.SIGKILL)
	proc.start()
	waitRunCompleted(t, st, runID, 3*time.Minute)
	res := runResult(t, proc, runID)
	if res.Conclusion != result.ConclusionSuccess {
		t.Fatalf("run %s after the restart:\n%s\n%s", res.Conclusion, res.Report, proc.logs())
	}
	for _, j := range res.Jobs {
		if !strings.HasPrefix(j.ID, "audit") {
			continue
		}
		if got := created.of(kube.PodName(runID, j.ID)); got != 1 {
			t.Errorf("job %s's pod was created %d times, want once: the restarted daemon did not attach", j.ID, got)
		}
		if j.Outcome != result.Success || strings.TrimSpace(j.Report) != "audited" {
			t.Errorf("job %s: %s, report %q (%s)", j.ID, j.Outcome, j.Report, j.Error)
		}
	}
	proc.signal(syscall.SIGTERM)
	assertNoPodsLeft(t, admin, runID)
}

func waitRunCompleted(t *testing.T, st store.Store, runID string, limit time.Duration) {
	t.Helper()
	waitFor(t, "run "+runID+" to complete", limit, func() bool {
		r, err := st.GetRun(context.Background(), runID)
		return err == nil && r.Status == store.RunCompleted
	})
}
