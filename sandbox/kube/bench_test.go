package kube

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/agentrunner/agentrunner/internal/kubetest"
	"github.com/agentrunner/agentrunner/sandbox"
)

// BenchmarkPodStartOnKwok measures, on the real API server with kwok playing the node's
// kubelet, the time from asking for an agent to its container reported running: through the
// sandbox (its NetworkPolicy, Secret, pod and owner patches) against a bare pod created with
// the one call kubectl makes, in the same run. kwok starts containers in name only, so this is
// the control plane's share of a pod's start, not a container runtime's.
func BenchmarkPodStartOnKwok(b *testing.B) {
	c := kubetest.Start(b)
	c.Kwok(b)
	if err := c.Apply("../../deploy/kubernetes/*.yaml"); err != nil {
		b.Fatal(err)
	}
	admin, err := kubernetes.NewForConfig(c.Admin())
	if err != nil {
		b.Fatal(err)
	}
	daemon, err := kubernetes.NewForConfig(c.As(c.Admin(), kubetest.DaemonAccount))
	if err != nil {
		b.Fatal(err)
	}
	x := &Exchange{}
	srv := httptest.NewServer(x)
	defer srv.Close()
	sb, err := New(daemon, Options{Namespace: agentsNamespace, RunnerImage: "localhost/agentrunner/runner:test", Exchange: x, ExchangeURL: srv.URL,
		Owner: sandbox.OwnerLabels(sandbox.DaemonOwner("bench"), "store-1"), NodeSelector: map[string]string{"type": "kwok"},
		Tolerations: []corev1.Toleration{kubetest.FakeNodeToleration}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var viaSandbox, bare []time.Duration
	for i := range b.N * 20 {
		spec := &sandbox.Spec{RunID: "rbench", JobID: fmt.Sprintf("agent[%d]", i), Image: "localhost/agent:1", Argv: []string{"/agent"},
			WorkspaceDir: b.TempDir(), OutputDir: b.TempDir(), Timeout: time.Minute, Secrets: map[string]string{"KEY": "v"}}
		start := time.Now()
		h, err := sb.Prepare(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		waitAgentRunning(b, admin, h.Name, time.Minute)
		viaSandbox = append(viaSandbox, time.Since(start))
		_ = sb.Destroy(ctx, h)

		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bare-%d", i)}, Spec: bareSpec(sb, spec)}
		start = time.Now()
		if _, err := daemon.CoreV1().Pods(agentsNamespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		waitAgentRunning(b, admin, pod.Name, time.Minute)
		bare = append(bare, time.Since(start))
		_ = daemon.CoreV1().Pods(agentsNamespace).Delete(ctx, pod.Name, metav1.DeleteOptions{})
	}
	p50 := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	b.ReportMetric(float64(p50(viaSandbox).Microseconds())/1000, "sandbox-p50-ms")
	b.ReportMetric(float64(p50(bare).Microseconds())/1000, "bare-pod-p50-ms")
	b.ReportMetric(float64(p50(viaSandbox))/float64(p50(bare)), "ratio")
}

// bareSpec is the agent's pod spec as the sandbox makes it (so it passes the namespace's Pod
// Security), without what needs the sandbox's other objects (the Secret's references).
func bareSpec(sb *Sandbox, spec *sandbox.Spec) corev1.PodSpec {
	j := &job{spec: spec, name: "bare", res: spec.Resources.Or(sb.opts.Resources), uid: 10001, gid: 10001, opts: &sb.opts}
	ps := j.pod().Spec
	strip := func(cs []corev1.Container) {
		for i := range cs {
			var env []corev1.EnvVar
			for _, e := range cs[i].Env {
				if e.ValueFrom == nil {
					env = append(env, e)
				}
			}
			cs[i].Env = env
		}
	}
	strip(ps.Containers)
	return ps
}

// BenchmarkPodStartOnARealNode measures, on the real node (kubelet, containerd, runc), the
// time from asking for an agent to its first line of output read back through the API server
// (what a person watching sees; a container reported running is not yet an agent at work
// when it waits for its network policy): through the sandbox (its NetworkPolicy, Secret and
// pod, whose workspace container fills the workspace from the exchange while its hook holds
// up the agent's, which waits for the policy) against a bare pod of the same image and
// hardening created with the one call kubectl makes, in the same run, alternating.
//
// The pods=carried cases run agents whose image carries the runner (runner-in-agent-images):
// one container that fills its workspace itself, against a bare pod of that same image.
func BenchmarkPodStartOnARealNode(b *testing.B) {
	r := newNodeRig(b)
	carried := newNodeRig(b, func(o *Options) { o.RunnerInAgentImages = true })
	for _, network := range []string{sandbox.NetworkNone, sandbox.NetworkOpen} {
		b.Run("pods=two-containers/network="+network, func(b *testing.B) { benchPodStart(b, r, network) })
	}
	for _, network := range []string{sandbox.NetworkNone, sandbox.NetworkOpen} {
		b.Run("pods=carried/network="+network, func(b *testing.B) { benchPodStart(b, carried, network) })
	}
}

func benchPodStart(b *testing.B, r *nodeRig, network string) {
	admin := r.admin
	ctx := context.Background()
	var viaSandbox, bare []time.Duration
	for i := range b.N * 10 {
		spec := r.spec(b, fmt.Sprintf("start-%s[%d]", network, i), network, "print", startedLine, "sleep", "5m")
		start := time.Now()
		h, err := r.sb.Prepare(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		ran := make(chan struct{})
		out := &lineWatch{line: startedLine, seen: make(chan struct{})}
		go func() { defer close(ran); _, _ = r.sb.Run(rctx, h, out) }()
		select {
		case <-out.seen:
		case <-time.After(2 * time.Minute):
			b.Fatalf("the agent of %s printed nothing within 2 minutes", h.Name)
		}
		viaSandbox = append(viaSandbox, time.Since(start))
		cancel()
		<-ran
		_ = r.sb.Destroy(ctx, h)
		waitPodGone(b, admin, h.Name)

		pod := barePod(r, fmt.Sprintf("bare-%s-%d", network, i), spec)
		start = time.Now()
		if _, err := admin.CoreV1().Pods(agentsNamespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		waitAgentRunning(b, admin, pod.Name, 2*time.Minute)
		waitLogLine(b, admin, pod.Name, startedLine)
		bare = append(bare, time.Since(start))
		zero := int64(0)
		_ = admin.CoreV1().Pods(agentsNamespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		waitPodGone(b, admin, pod.Name)
	}
	p50 := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	b.ReportMetric(float64(p50(viaSandbox).Microseconds())/1000, "sandbox-p50-ms")
	b.ReportMetric(float64(p50(bare).Microseconds())/1000, "bare-pod-p50-ms")
	b.ReportMetric(float64(p50(viaSandbox))/float64(p50(bare)), "ratio")
	// The kubelet relists its runtime once a second, so starts fall into steps: the spread
	// says more than the median alone.
	b.Logf("sandbox %v\nbare    %v", roundAll(viaSandbox), roundAll(bare))
}

func roundAll(d []time.Duration) []time.Duration {
	out := make([]time.Duration, len(d))
	for i, v := range d {
		out[i] = v.Round(10 * time.Millisecond)
	}
	return out
}

// barePod runs spec's image and command as the agent's container would, hardened alike (so it
// passes the namespace's Pod Security), on the real node, with nothing of the sandbox's.
func barePod(r *nodeRig, name string, spec *sandbox.Spec) *corev1.Pod {
	j := &job{spec: spec, name: name, res: spec.Resources.Or(r.sb.opts.Resources), uid: 10001, gid: 10001, opts: &r.sb.opts}
	ps := j.pod().Spec
	agent := *containerNamed(ps, agentContainer)
	agent.Command, agent.Env = spec.Argv, nil
	agent.VolumeMounts = []corev1.VolumeMount{{Name: volTmp, MountPath: "/tmp"}}
	ps.Containers = []corev1.Container{agent}
	for _, v := range ps.Volumes {
		if v.Name == volTmp {
			ps.Volumes = []corev1.Volume{v}
			break
		}
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: ps}
}

// waitAgentRunning waits until the pod's agent container is reported running.
func waitAgentRunning(b testing.TB, cli kubernetes.Interface, name string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		p, err := cli.CoreV1().Pods(agentsNamespace).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil {
			for _, c := range p.Status.ContainerStatuses {
				if c.Name == agentContainer && c.State.Running != nil {
					return
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("pod %s's agent did not run within %s", name, limit)
}

func waitPodGone(b testing.TB, cli kubernetes.Interface, name string) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if _, err := cli.CoreV1().Pods(agentsNamespace).Get(context.Background(), name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("pod %s still there a minute after its deletion", name)
}

// startedLine is what the benchmark's agents print first.
const startedLine = "agent-started"

// lineWatch is an agent's log that tells when line first appears in it.
type lineWatch struct {
	line string
	seen chan struct{}
	buf  []byte
	once sync.Once
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	if strings.Contains(string(w.buf), w.line) {
		w.once.Do(func() { close(w.seen) })
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

// waitLogLine follows the agent container's log, as kubectl logs -f does, until line appears.
func waitLogLine(b testing.TB, cli kubernetes.Interface, name, line string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rc, err := cli.CoreV1().Pods(agentsNamespace).GetLogs(name, &corev1.PodLogOptions{Container: agentContainer, Follow: true}).Stream(ctx)
	if err != nil {
		b.Fatalf("follow %s's log: %v", name, err)
	}
	defer rc.Close()
	w := &lineWatch{line: line, seen: make(chan struct{})}
	go func() { _, _ = io.Copy(w, rc) }()
	select {
	case <-w.seen:
	case <-ctx.Done():
		b.Fatalf("pod %s printed no %q within 2 minutes", name, line)
	}
}
