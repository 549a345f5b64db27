package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/agentrunner/agentrunner/internal/gittest"
	"github.com/agentrunner/agentrunner/internal/kubetest"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/sandbox/kube"
	"github.com/agentrunner/agentrunner/sandbox/kube/carry"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

const agentsNamespace = "agentrunner-agents"

// kwokCluster is the test's control plane with kwok's fake node and the README's manifests.
func kwokCluster(t testing.TB) (*kubetest.Cluster, kubernetes.Interface) {
	t.Helper()
	c := kubetest.Start(t)
	c.Kwok(t)
	if err := c.Apply("../deploy/kubernetes/*.yaml"); err != nil {
		t.Fatalf("apply deploy/kubernetes: %v", err)
	}
	admin, err := kubernetes.NewForConfig(c.Admin())
	if err != nil {
		t.Fatal(err)
	}
	return c, admin
}

// kubeDaemon is `runner serve` with `sandbox: kubernetes` on the test's cluster, as the
// daemon's service account, its pods placed on kwok's node.
func kubeDaemon(t testing.TB, c *kubetest.Cluster, id, repoDir string, maxAgents int) (*daemonProc, store.Store) {
	t.Helper()
	exchange := freePort(t)
	return kubeDaemonWith(t, c, id, repoDir, maxAgents, fmt.Sprintf(`  runner-image: localhost/agentrunner/runner:test
  exchange-listen: %q
  exchange-url: "http://%s"
  node-selector: {type: kwok}
  tolerations: [{key: %q, operator: Equal, value: %q, effect: NoSchedule}]
`, exchange, exchange, kubetest.FakeNodeKey, kubetest.FakeNodeValue))
}

// kubeDaemonWith is kubeDaemon with the rest of the kubernetes block (placement, images, the
// exchange's address) as given.
func kubeDaemonWith(t testing.TB, c *kubetest.Cluster, id, repoDir string, maxAgents int, kubernetesBlock string) (*daemonProc, store.Store) {
	t.Helper()
	db := storetest.SQLite(t)
	proc := newDaemonProc(t, fmt.Sprintf(`listen: "@LISTEN@"
data-dir: "@DATA@"
database: %q
id: %s
sandbox: kubernetes
reporters: none
schedules: false
max-agents: %d
max-runs: 4
log-level: info
workspace: {mode: checkout}
repos:
  - {name: acme/app, url: %q, default-branch: main}
kubernetes:
  kubeconfig: %q
  namespace: %s
%s`, db.DSN, id, maxAgents, repoDir, c.DaemonKubeconfig(), agentsNamespace, kubernetesBlock))
	return proc, db.Open(t)
}

func dispatch(t testing.TB, st store.Store, addr, routine string) string {
	t.Helper()
	tok, err := st.CreateToken(context.Background(), store.Token{Name: "t", Scope: store.ScopeDispatch})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/repos/acme/app/routines/"+routine+"/dispatch", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		RunID string `json:"run_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&d)
	if resp.StatusCode != http.StatusAccepted || d.RunID == "" {
		t.Fatalf("dispatch %s: %s", routine, resp.Status)
	}
	return d.RunID
}

// podPlayer plays the part of the containers of the agents' pods, which kwok runs in name only:
// once a pod is Running it fetches the workspace from the daemon's exchange with the pod's
// token (from the job's Secret, as the kubelet would hand it to the pod), hands it back with a
// file the "agent" wrote, and ends the agent's container with exit 0. Until release is
// closed, it only fetches.
type podPlayer struct {
	t       testing.TB
	cli     kubernetes.Interface
	release chan struct{}

	mu      sync.Mutex
	started map[types.UID]bool // pods seen Running
	seen    map[types.UID]bool // pods seen at all
	created map[string]int     // pods created, by name (distinct uids seen)
	fetched int
	ended   int
	gone    []string // pods deleted before they could play their part
}

func playPods(t testing.TB, cli kubernetes.Interface, hold bool) *podPlayer {
	p := &podPlayer{t: t, cli: cli, release: make(chan struct{}), started: map[types.UID]bool{}, seen: map[types.UID]bool{}, created: map[string]int{}}
	if !hold {
		close(p.release)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	// Each pod plays on its own, as real pods would: one waiting for its workspace holds up
	// no other.
	work := make(chan *corev1.Pod, 4096)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for pod := range work {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.play(ctx, pod)
			}()
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(work)
		// List, then watch from the list's version; a watch the API server ends with an error
		// (its version too old, after a long stall under load) starts over with a list, so a
		// pod that started meanwhile is not missed.
		rv := ""
		for ctx.Err() == nil {
			if rv == "" {
				list, err := cli.CoreV1().Pods(agentsNamespace).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelRun})
				if err != nil {
					time.Sleep(200 * time.Millisecond)
					continue
				}
				for i := range list.Items {
					p.see(&list.Items[i], work)
				}
				rv = list.ResourceVersion
			}
			w, err := cli.CoreV1().Pods(agentsNamespace).Watch(ctx, metav1.ListOptions{LabelSelector: kube.LabelRun, ResourceVersion: rv})
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					rv = ""
					break
				}
				if pod, ok := ev.Object.(*corev1.Pod); ok {
					rv = pod.ResourceVersion
					p.see(pod, work)
				}
			}
			w.Stop()
		}
	}()
	return p
}

func (p *podPlayer) play(ctx context.Context, pod *corev1.Pod) {
	// The API server may turn requests away while thousands of pods start (429): as a kubelet
	// would, try again.
	secret, err := p.cli.CoreV1().Secrets(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	for attempt := 0; apierrors.IsTooManyRequests(err) && attempt < 100; attempt++ {
		time.Sleep(500 * time.Millisecond)
		secret, err = p.cli.CoreV1().Secrets(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	}
	if err != nil {
		if p.deleted(ctx, pod) {
			return
		}
		p.t.Errorf("pod %s: its Secret: %v", pod.Name, err)
		return
	}
	token := string(secret.Data["agentrunner-exchange-token"])
	var url string
	for _, e := range pod.Spec.Containers[0].Env {
		if e.Name == carry.EnvURL {
			url = e.Value
		}
	}
	dir, err := os.MkdirTemp("", "pod-")
	if err != nil {
		p.t.Error(err)
		return
	}
	defer os.RemoveAll(dir)
	trees := map[string]string{"workspace": filepath.Join(dir, "ws"), "out": filepath.Join(dir, "out")}
	for _, d := range trees {
		_ = os.Mkdir(d, 0o755)
	}
	if err := carry.Fetch(ctx, url, token, trees); err != nil {
		if ctx.Err() == nil && !p.deleted(ctx, pod) {
			p.t.Errorf("pod %s: fetch the workspace: %v", pod.Name, err)
		}
		return
	}
	p.mu.Lock()
	p.fetched++
	p.mu.Unlock()
	select {
	case <-p.release:
	case <-ctx.Done():
		return
	}
	_ = os.WriteFile(filepath.Join(trees["out"], "report.md"), []byte("played "+pod.Name+"\n"), 0o644)
	// The token of the Secret as it is now: a daemon that attached after a restart serves it.
	if err := carry.HandBack(ctx, url, token, trees); err != nil {
		if ctx.Err() == nil && !p.deleted(ctx, pod) {
			p.t.Errorf("pod %s: hand the workspace back: %v", pod.Name, err)
		}
		return
	}
	for attempt := 0; attempt < 100; attempt++ {
		cur, err := p.cli.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsTooManyRequests(err) {
			time.Sleep(500 * time.Millisecond)
			continue
		}
		if err != nil {
			return
		}
		now := metav1.Now()
		cur.Status.Phase = corev1.PodSucceeded
		for i := range cur.Status.ContainerStatuses {
			cur.Status.ContainerStatuses[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now}}
		}
		_, err = p.cli.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		if apierrors.IsTooManyRequests(err) {
			time.Sleep(500 * time.Millisecond)
		} else if !apierrors.IsConflict(err) {
			break
		}
	}
	p.mu.Lock()
	p.ended++
	p.mu.Unlock()
}

// see notes a pod the first time its uid shows up (created), and hands it to work the first
// time it is seen running.
func (p *podPlayer) see(pod *corev1.Pod, work chan<- *corev1.Pod) {
	p.mu.Lock()
	if !p.seen[pod.UID] {
		p.seen[pod.UID] = true
		p.created[pod.Name]++
	}
	fresh := pod.Status.Phase == corev1.PodRunning && pod.DeletionTimestamp == nil && !p.started[pod.UID]
	if fresh {
		p.started[pod.UID] = true
	}
	p.mu.Unlock()
	if fresh {
		work <- pod
	}
}

// deleted tells whether pod is gone or going (the daemon replaced or gave it up while the
// player came to it), and notes it.
func (p *podPlayer) deleted(ctx context.Context, pod *corev1.Pod) bool {
	cur, err := p.cli.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err == nil && cur.UID == pod.UID && cur.DeletionTimestamp == nil {
		return false
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return false
	}
	p.mu.Lock()
	p.gone = append(p.gone, pod.Name)
	p.mu.Unlock()
	return true
}

func (p *podPlayer) counts() (started, fetched, ended int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.started), p.fetched, p.ended
}

// fanOutRoutine is n agents of one matrix and a consolidating step after them.
func fanOutRoutine(n int) string {
	shards := make([]string, n)
	for i := range shards {
		shards[i] = strconv.Itoa(i)
	}
	return fmt.Sprintf(`name: fanout
on: {dispatch: {}}
max-fan-out: %d
defaults: {image: localhost/agent:1, pull-policy: never, timeout: 10m}
agents:
  audit:
    command: [/agent]
    matrix: {shard: [%s]}
    max-parallel: %d
  consolidate:
    needs: [audit]
    command: [/agent]
`, n, strings.Join(shards, ", "), n)
}

func runResult(t testing.TB, proc *daemonProc, runID string) *result.Run {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(proc.cfg), "data", "runs", runID, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res result.Run
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

// peakRSS is a process's peak resident memory (VmHWM), in bytes.
func peakRSS(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func assertNoPodsLeft(t testing.TB, admin kubernetes.Interface, runID string) {
	t.Helper()
	sel := metav1.ListOptions{LabelSelector: kube.LabelRun + "=" + kube.LabelValue(runID)}
	// Deleted pods go once the node's kubelet (kwok, backlogged after thousands) confirms.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		pods, perr := admin.CoreV1().Pods(agentsNamespace).List(context.Background(), sel)
		secrets, serr := admin.CoreV1().Secrets(agentsNamespace).List(context.Background(), sel)
		nps, nerr := admin.NetworkingV1().NetworkPolicies(agentsNamespace).List(context.Background(), sel)
		if perr == nil && serr == nil && nerr == nil && len(pods.Items)+len(secrets.Items)+len(nps.Items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("run %s left objects in the cluster: %v %v %v", runID, pods, secrets, nps)
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// The scale tier: one workflow of many agents (2,000 by default; AGENTRUNNER_KWOK_AGENTS
// changes it) through a real `runner serve` on the Kubernetes sandbox — every agent a pod
// created, scheduled by kube-scheduler onto kwok's node, "run", handed back and concluded,
// then a consolidating step. It reports the time and the daemon's peak memory, and checks
// that nothing of the run is left in the cluster.
func TestKubernetesFanOutOnKwok(t *testing.T) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("AGENTRUNNER_KWOK_AGENTS")); err == nil && v > 0 {
		n = v
	}
	elapsed, rss := kwokFanOut(t, n)
	t.Logf("%d agents as pods on kwok: %s (%.1f agents/s), daemon peak RSS %d MiB", n+1, elapsed.Round(time.Millisecond),
		float64(n+1)/elapsed.Seconds(), rss>>20)
}

// BenchmarkKwokFanOut2000 is the scale tier as a figure: agents concluded a second and the
// daemon's peak memory, for 2,000 agents and their consolidating step.
func BenchmarkKwokFanOut2000(b *testing.B) {
	for range b.N {
		elapsed, rss := kwokFanOut(b, 2000)
		b.ReportMetric(2001/elapsed.Seconds(), "agents/s")
		b.ReportMetric(float64(rss>>20), "daemon-peak-MiB")
	}
}

func kwokFanOut(t testing.TB, n int) (elapsed time.Duration, rss int64) {
	c, admin := kwokCluster(t)
	repoDir, _ := gittest.Repo(t, map[string]string{".agents/fanout.yaml": fanOutRoutine(n)})
	proc, st := kubeDaemon(t, c, "kube-scale", repoDir, n)
	proc.start()
	player := playPods(t, admin, false)
	start := time.Now()
	runID := dispatch(t, st, proc.addr, "fanout")
	waitForRun(t, st, runID, kwokRunLimit(n), player, admin)
	elapsed = time.Since(start)
	rss = peakRSS(proc.cmd.Process.Pid)
	res := runResult(t, proc, runID)
	if res.Conclusion != result.ConclusionSuccess || len(res.Jobs) != n+1 {
		var failed []string
		for _, j := range res.Jobs {
			if j.Outcome != result.Success && len(failed) < 10 {
				failed = append(failed, fmt.Sprintf("%s %s after %s: %s", j.ID, j.Outcome, j.Finished.Sub(j.Started), j.Error))
			}
		}
		t.Fatalf("run %s with %d jobs, want success with %d; failed:\n%s\nreport:\n%.3000s\ndaemon:\n%s", res.Conclusion, len(res.Jobs), n+1,
			strings.Join(failed, "\n"), res.Report, proc.logs())
	}
	for _, j := range res.Jobs {
		if j.Outcome != result.Success || !strings.HasPrefix(j.Report, "played ") {
			t.Fatalf("job %s: %s %q %s", j.ID, j.Outcome, j.Report, j.Error)
		}
	}
	player.mu.Lock()
	gone := player.gone
	player.mu.Unlock()
	if started, _, _ := player.counts(); started != n+1+len(gone) {
		t.Errorf("%d pods ran (%d of them deleted before they played), want %d; the daemon's warnings:\n%s", started, len(gone), n+1, proc.warnings(20))
	}
	if len(gone) > 0 {
		t.Logf("%d pods were deleted under the player (%v); the daemon's warnings:\n%s", len(gone), gone[:min(5, len(gone))], proc.warnings(40))
	}
	proc.signal(syscall.SIGTERM)
	assertNoPodsLeft(t, admin, runID)
	return elapsed, rss
}

// kwokRunLimit bounds the fan-out's run: about 1.5 agents a second at least, 2 minutes at
// least.
func kwokRunLimit(n int) time.Duration {
	return max(2*time.Minute, time.Duration(n)*700*time.Millisecond)
}

func waitForRun(t testing.TB, st store.Store, runID string, limit time.Duration, player *podPlayer, admin kubernetes.Interface) {
	t.Helper()
	deadline := time.Now().Add(limit)
	next := time.Now().Add(10 * time.Second)
	for {
		r, err := st.GetRun(context.Background(), runID)
		if err == nil && r.Status == store.RunCompleted {
			return
		}
		if time.Now().After(next) {
			s, f, e := player.counts()
			phases := map[string]int{}
			if pods, err := admin.CoreV1().Pods(agentsNamespace).List(context.Background(), metav1.ListOptions{}); err == nil {
				for _, p := range pods.Items {
					phases[string(p.Status.Phase)+"@"+p.Spec.NodeName]++
				}
			}
			t.Logf("waiting for run %s: %d pods seen running, %d fetched, %d ended; pods by phase@node %v", runID, s, f, e, phases)
			next = time.Now().Add(10 * time.Second)
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not complete within %s", runID, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill -9 of the daemon while its agents run as pods: the daemon started again takes its runs
// back and attaches to the pods it had started — no pod is created a second time — and the
// run concludes with what those pods hand back.
func TestKillNineWhileAgentsRunAsPods(t *testing.T) {
	const n = 5
	c, admin := kwokCluster(t)
	repoDir, _ := gittest.Repo(t, map[string]string{".agents/fanout.yaml": fanOutRoutine(n)})
	proc, st := kubeDaemon(t, c, "kube-kill", repoDir, n)
	proc.start()
	player := playPods(t, admin, true)
	runID := dispatch(t, st, proc.addr, "fanout")
	waitFor(t, "every agent's pod to fetch its workspace", 2*time.Minute, func() bool {
		_, fetched, _ := player.counts()
		return fetched == n
	})
	pods, err := admin.CoreV1().Pods(agentsNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: kube.LabelRun + "=" + kube.LabelValue(runID)})
	if err != nil || len(pods.Items) != n {
		t.Fatalf("pods before the kill: %d, %v", len(pods.Items), err)
	}
	uids := map[string]string{}
	for _, p := range pods.Items {
		uids[p.Name] = string(p.UID)
	}
	proc.signal(syscall.SIGKILL)
	proc.start()
	// Let the restarted daemon take its run back and attach before the pods end.
	time.Sleep(3 * time.Second)
	close(player.release)
	waitForRun(t, st, runID, 3*time.Minute, player, admin)
	res := runResult(t, proc, runID)
	if res.Conclusion != result.ConclusionSuccess {
		t.Fatalf("run %s after the restart:\n%s", res.Conclusion, res.Report)
	}
	for name, uid := range uids {
		var job *result.Job
		for _, j := range res.Jobs {
			if kube.PodName(runID, j.ID) == name {
				job = j
			}
		}
		if job == nil || job.Outcome != result.Success || job.Report != "played "+name+"\n" && job.Report != "played "+name {
			t.Errorf("pod %s (%s): its job %+v", name, uid, job)
		}
	}
	player.mu.Lock()
	for name, count := range player.created {
		if count != 1 && uids[name] != "" {
			t.Errorf("pod %s was created %d times, want once: the restarted daemon did not attach", name, count)
		}
	}
	player.mu.Unlock()
	proc.signal(syscall.SIGTERM)
	assertNoPodsLeft(t, admin, runID)
}
