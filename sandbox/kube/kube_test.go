package kube

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/sandbox/kube/carry"
)

const ns = "agents"

// rig is a sandbox on client-go's fake clientset with a real exchange on loopback, and a
// stand-in for the kubelet: the test plays the pod's part (fetch, hand back, status).
type rig struct {
	cli *fake.Clientset
	sb  *Sandbox
	x   *Exchange
	url string
	// podWatches counts the pod watches opened. The fake clientset's watches see only what
	// changes after they open (a real API server replays from the resource version), so a
	// test that changes a pod's status under Run waits for Run's watch first.
	podWatches atomic.Int32
}

// watching waits until at least n pod watches were opened.
func (r *rig) watching(n int32) bool {
	return waitFor(func() bool { return r.podWatches.Load() >= n })
}

func newRig(t *testing.T, owner string, tune ...func(*Options)) *rig {
	t.Helper()
	return newRigOn(t, fake.NewClientset(), owner, tune...)
}

func newRigOn(t *testing.T, cli *fake.Clientset, owner string, tune ...func(*Options)) *rig {
	t.Helper()
	x := &Exchange{}
	srv := httptest.NewServer(x)
	t.Cleanup(srv.Close)
	opts := Options{Namespace: ns, RunnerImage: "localhost/agentrunner/runner:test", Exchange: x, ExchangeURL: srv.URL,
		Owner: sandbox.OwnerLabels(sandbox.DaemonOwner(owner), "store-1"), StopGrace: time.Second, HandBackWait: 2 * time.Second}
	for _, f := range tune {
		f(&opts)
	}
	sb, err := New(cli, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{cli: cli, sb: sb, x: x, url: srv.URL}
	cli.PrependWatchReactor("pods", func(a k8stesting.Action) (bool, watch.Interface, error) {
		var opts metav1.ListOptions
		if wa, ok := a.(k8stesting.WatchActionImpl); ok {
			opts = wa.ListOptions
		}
		w, err := cli.Tracker().Watch(a.GetResource(), a.GetNamespace(), opts)
		if err != nil {
			return false, nil, err
		}
		r.podWatches.Add(1)
		return true, w, nil
	})
	return r
}

func testSpec(t testing.TB) *sandbox.Spec {
	t.Helper()
	ws, out := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(ws, "README.md"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &sandbox.Spec{RunID: "r1", JobID: "audit[3]", Image: "localhost/agent:1", Argv: []string{"claude", "-p", "fix"},
		Env: map[string]string{"MODE": "fast"}, Secrets: map[string]string{"ANTHROPIC_API_KEY": "sk-ant-secret-value"},
		Prompt: "fix the bug", WorkspaceDir: ws, OutputDir: out, Timeout: time.Minute}
}

func (r *rig) pod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	p, err := r.cli.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// setStatus stands in for the kubelet.
func (r *rig) setStatus(t *testing.T, name string, status corev1.PodStatus) {
	t.Helper()
	p := r.pod(t, name)
	p.Status = status
	if _, err := r.cli.CoreV1().Pods(ns).UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Error(err)
	}
}

func running() corev1.PodStatus {
	return corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: agentContainer,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}}
}

func terminated(code int32, reason string) corev1.PodStatus {
	phase := corev1.PodSucceeded
	if code != 0 {
		phase = corev1.PodFailed
	}
	return corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{Name: agentContainer,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason,
			StartedAt: metav1.Now(), FinishedAt: metav1.Now()}}}}}
}

// podToken is what the pod's containers read from the job's Secret.
func (r *rig) podToken(t *testing.T, name string) string {
	t.Helper()
	s, err := r.cli.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return string(s.Data[secretTokenKey])
}

// A job's whole life on the fake API: Prepare makes the policy, the Secret and the pod (which
// owns the other two); the pod fetches the workspace once Run says it is ready, the agent
// changes it, hands it back, and ends; Run reports the outcome, the change is in the daemon's
// workspace, and nothing of the job is left.
func TestAJobRunsAsAPodAndItsChangesComeBack(t *testing.T) {
	r := newRig(t, "d1")
	spec := testSpec(t)
	ready := make(chan struct{})
	spec.WorkspaceReady = func(context.Context) error { close(ready); return nil }
	h, err := r.sb.Prepare(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	name := PodName("r1", "audit[3]")
	if h.Name != name {
		t.Fatalf("handle name %q, want %q", h.Name, name)
	}
	pod := r.pod(t, name)
	for _, kind := range []string{"secret", "networkpolicy"} {
		var refs []metav1.OwnerReference
		if kind == "secret" {
			s, _ := r.cli.CoreV1().Secrets(ns).Get(t.Context(), name, metav1.GetOptions{})
			refs = s.OwnerReferences
		} else {
			p, _ := r.cli.NetworkingV1().NetworkPolicies(ns).Get(t.Context(), name, metav1.GetOptions{})
			refs = p.OwnerReferences
		}
		if len(refs) != 1 || refs[0].Kind != "Pod" || refs[0].Name != name || refs[0].UID != pod.UID {
			t.Errorf("the %s's owner references %+v, want the pod", kind, refs)
		}
	}
	token := r.podToken(t, name)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the pod
		defer wg.Done()
		podWS, podOut := t.TempDir(), t.TempDir()
		trees := map[string]string{"workspace": podWS, "out": podOut}
		fetched := make(chan error, 1)
		go func() { fetched <- carry.Fetch(context.Background(), r.url, token, trees) }()
		select {
		case err := <-fetched:
			t.Errorf("the pod fetched before the workspace was ready: %v", err)
			return
		case <-ready:
		}
		if err := <-fetched; err != nil {
			t.Error(err)
			return
		}
		if got, _ := os.ReadFile(filepath.Join(podOut, sandbox.PromptFile)); string(got) != "fix the bug" {
			t.Errorf("the pod's prompt.md = %q", got)
		}
		r.setStatus(t, name, running())
		_ = os.WriteFile(filepath.Join(podWS, "README.md"), []byte("hello, fixed\n"), 0o644)
		_ = os.WriteFile(filepath.Join(podOut, "report.md"), []byte("# Fixed\n"), 0o644)
		if err := carry.HandBack(context.Background(), r.url, token, trees); err != nil {
			t.Error(err)
		}
		r.setStatus(t, name, terminated(0, "Completed"))
	}()
	var logs strings.Builder
	res, err := r.sb.Run(t.Context(), h, &logs)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != sandbox.Success || res.ExitCode != 0 {
		t.Errorf("outcome %s %d, want success 0", res.Outcome, res.ExitCode)
	}
	if !strings.Contains(logs.String(), "fake logs") { // what the fake API's log endpoint says
		t.Errorf("the agent's log was not followed: %q", logs.String())
	}
	if got, _ := os.ReadFile(filepath.Join(spec.WorkspaceDir, "README.md")); string(got) != "hello, fixed\n" {
		t.Errorf("the daemon's workspace has %q, want the agent's change", got)
	}
	if got, _ := os.ReadFile(filepath.Join(spec.OutputDir, "report.md")); string(got) != "# Fixed\n" {
		t.Errorf("the daemon's output directory has report.md %q", got)
	}
	if err := r.sb.Destroy(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	assertGone(t, r, name)
	// The pod's side keeps trying a token the exchange does not know (its daemon may be
	// starting again); a second is enough to see the refusal.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := carry.Fetch(ctx, r.url, token, map[string]string{"workspace": t.TempDir(), "out": t.TempDir()}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("fetch with the job's token after Destroy: %v, want 401", err)
	}
}

func assertGone(t *testing.T, r *rig, name string) {
	t.Helper()
	if _, err := r.cli.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{}); err == nil {
		t.Error("the pod is left")
	}
	if _, err := r.cli.CoreV1().Secrets(ns).Get(t.Context(), name, metav1.GetOptions{}); err == nil {
		t.Error("the secret is left")
	}
	if _, err := r.cli.NetworkingV1().NetworkPolicies(ns).Get(t.Context(), name, metav1.GetOptions{}); err == nil {
		t.Error("the network policy is left")
	}
}

// The pod passes what Pod Security "restricted" requires, and more: no token, read-only root,
// the workspace bounded by the disk limit, /tmp in memory, a deadline past the timeout; the
// secret's value is nowhere in the pod's spec, only a reference to the job's Secret.
func TestThePodIsHardenedAndHoldsNoSecretValue(t *testing.T) {
	r := newRig(t, "d1")
	spec := testSpec(t)
	spec.Resources = sandbox.Resources{CPUs: 2, Memory: 1 << 30, Disk: 5 << 30}
	h, err := r.sb.Prepare(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer r.sb.Destroy(t.Context(), h)
	pod := r.pod(t, h.Name)
	raw, _ := json.Marshal(pod)
	if strings.Contains(string(raw), "sk-ant-secret-value") {
		t.Fatal("the secret's value is in the pod's spec")
	}
	ps := pod.Spec
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Error("the service account token is mounted")
	}
	if ps.RestartPolicy != corev1.RestartPolicyNever || ps.ActiveDeadlineSeconds == nil || *ps.ActiveDeadlineSeconds != int64((time.Minute+2*time.Minute).Seconds()) {
		t.Errorf("restart %s, deadline %v: want Never and the timeout plus the margin", ps.RestartPolicy, ps.ActiveDeadlineSeconds)
	}
	for _, c := range append(ps.InitContainers, ps.Containers...) {
		sc := c.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || *sc.RunAsUser != 10001 || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
			sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("container %s is not hardened: %+v", c.Name, sc)
		}
	}
	gated := false
	fetch := containerNamed(ps, fetchContainer)
	for _, e := range containerNamed(ps, agentContainer).Env {
		gated = gated || e.Name == carry.EnvGate
	}
	if !gated {
		t.Error("the agent's container does not wait for the network policy before the agent starts")
	}
	if len(ps.Containers) != 2 || ps.Containers[0].Name != fetchContainer || fetch.Lifecycle == nil || fetch.Lifecycle.PostStart == nil ||
		strings.Join(fetch.Lifecycle.PostStart.Exec.Command, " ") != "/runner "+carry.WaitCommand {
		t.Errorf("the workspace's container must come first and hold up the agent's with its postStart hook: %+v", ps.Containers)
	}
	agent := containerNamed(ps, agentContainer)
	if got := strings.Join(agent.Command, " "); got != carry.RunnerPath+" "+carry.AgentCommand+" -- claude -p fix" {
		t.Errorf("agent command %q", got)
	}
	if agent.Resources.Limits.Cpu().MilliValue() != 2000 || agent.Resources.Limits.Memory().Value() != 1<<30 {
		t.Errorf("limits %v", agent.Resources.Limits)
	}
	// What the scheduler holds for the pod is the agent's own, give or take the workspace's
	// container's token request (it ends once the agent started).
	var cpu, mem int64
	for _, c := range ps.Containers {
		cpu += c.Resources.Requests.Cpu().MilliValue()
		mem += c.Resources.Requests.Memory().Value()
	}
	if cpu > 2000+10 || mem > 1<<30+32<<20 {
		t.Errorf("the pod requests %d millicores and %d bytes, want about the agent's 2000 and 1 GiB", cpu, mem)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range agent.Env {
		env[e.Name] = e
	}
	if e := env["ANTHROPIC_API_KEY"]; e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef.Name != h.Name {
		t.Errorf("the secret's env var %+v, want a reference to the job's Secret", e)
	}
	if env["MODE"].Value != "fast" || env["HOME"].Value != "/tmp" || env[sandbox.EnvPrompt].Value != "fix the bug" {
		t.Errorf("env %+v", env)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range ps.Volumes {
		vols[v.Name] = v
	}
	if v := vols[volWorkspace].EmptyDir; v == nil || v.SizeLimit.Value() != 5<<30 {
		t.Errorf("workspace volume %+v, want an emptyDir of the disk limit", vols[volWorkspace])
	}
	if v := vols[volTmp].EmptyDir; v == nil || v.Medium != corev1.StorageMediumMemory {
		t.Errorf("/tmp volume %+v, want memory-backed", vols[volTmp])
	}
	np, err := r.cli.NetworkingV1().NetworkPolicies(ns).Get(t.Context(), h.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(np.Spec.Ingress) != 0 || len(np.Spec.Egress) != 1 || np.Spec.Egress[0].To[0].IPBlock.CIDR != "127.0.0.1/32" ||
		np.Spec.PodSelector.MatchLabels[LabelPod] != h.Name {
		t.Errorf("network policy %+v: want no ingress and egress only to the exchange", np.Spec)
	}
}

// A job claimed again (its daemon restarted, or another took over its lease) finds its pod and
// follows it instead of starting a second; the pod keeps the token it was started with.
func TestAJobClaimedAgainAttachesToItsPod(t *testing.T) {
	cli := fake.NewClientset()
	first := newRigOn(t, cli, "d1")
	spec := testSpec(t)
	if _, err := first.sb.Prepare(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	name := PodName("r1", "audit[3]")
	token := first.podToken(t, name)
	uid := first.pod(t, name).UID
	second := newRigOn(t, cli, "d2")
	h, err := second.sb.Prepare(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if pods, _ := cli.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{}); len(pods.Items) != 1 || pods.Items[0].UID != uid {
		t.Fatalf("pods after the second claim: %d, want the first one only", len(pods.Items))
	}
	go func() {
		trees := map[string]string{"workspace": t.TempDir(), "out": t.TempDir()}
		if err := carry.Fetch(context.Background(), second.url, token, trees); err != nil {
			t.Errorf("the pod's token does not open the second daemon's exchange: %v", err)
		}
		_ = carry.HandBack(context.Background(), second.url, token, trees)
		second.setStatus(t, name, terminated(3, "Error"))
	}()
	res, err := second.sb.Run(t.Context(), h, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != sandbox.Failed || res.ExitCode != 3 {
		t.Errorf("outcome %s %d, want failed 3", res.Outcome, res.ExitCode)
	}
	_ = second.sb.Destroy(t.Context(), h)
}

// A pod of the same name that is being deleted (swept, or an earlier attempt's) is not one to
// attach to: Prepare waits until it is gone and starts a new one.
func TestAPodBeingDeletedIsNotAttachedTo(t *testing.T) {
	r := newRig(t, "d1")
	spec := testSpec(t)
	name := PodName(spec.RunID, spec.JobID)
	now := metav1.Now()
	old := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: "old", DeletionTimestamp: &now,
		Labels: map[string]string{LabelRun: spec.RunID}, Annotations: map[string]string{AnnotationJob: spec.JobID}}}
	if _, err := r.cli.CoreV1().Pods(ns).Create(t.Context(), old, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h, err := r.sb.Prepare(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer r.sb.Destroy(t.Context(), h)
	if pod := r.pod(t, name); pod.UID == "old" || pod.DeletionTimestamp != nil {
		t.Fatalf("attached to the pod being deleted: %+v", pod.ObjectMeta)
	}
	if r.sb.podJob(h).attached {
		t.Error("the new pod counts as attached")
	}
}

// An agent past its timeout is stopped: its pod deleted, the outcome timed_out; a cancelled
// one likewise ends cancelled.
func TestTimeoutAndCancelDeleteThePod(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cancel bool
		want   sandbox.Outcome
	}{{"timeout", false, sandbox.TimedOut}, {"cancel", true, sandbox.Cancelled}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, "d1")
			spec := testSpec(t)
			spec.Timeout = 300 * time.Millisecond
			if tc.cancel {
				spec.Timeout = time.Minute
			}
			h, err := r.sb.Prepare(t.Context(), spec)
			if err != nil {
				t.Fatal(err)
			}
			r.setStatus(t, h.Name, running())
			ctx, cancel := context.WithCancel(t.Context())
			if tc.cancel {
				time.AfterFunc(200*time.Millisecond, cancel)
			}
			defer cancel()
			res, err := r.sb.Run(ctx, h, &strings.Builder{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != tc.want {
				t.Errorf("outcome %s, want %s", res.Outcome, tc.want)
			}
			if _, err := r.cli.CoreV1().Pods(ns).Get(t.Context(), h.Name, metav1.GetOptions{}); err == nil {
				t.Error("the pod is still there")
			}
			_ = r.sb.Destroy(t.Context(), h)
		})
	}
}

// The infrastructure's failures are errors, not the agent's outcomes: an image the node
// cannot have, an eviction, a pod deleted under the run.
func TestInfrastructureFailuresAreErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status corev1.PodStatus
		delete bool
		want   string
	}{
		{"image", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: agentContainer,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImageNeverPull", Message: "image not present"}}}}}, false, "ErrImageNeverPull"},
		{"evicted", corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "The node was low on resource: memory."}, false, "Evicted"},
		{"deleted", corev1.PodStatus{}, true, "deleted before its agent ended"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, "d1", func(o *Options) { o.InfraRetries = -1 })
			h, err := r.sb.Prepare(t.Context(), testSpec(t))
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				if !r.watching(1) {
					t.Error("Run did not watch the pod")
					return
				}
				if tc.delete {
					_ = r.cli.CoreV1().Pods(ns).Delete(context.Background(), h.Name, metav1.DeleteOptions{})
					return
				}
				r.setStatus(t, h.Name, tc.status)
			}()
			_, err = r.sb.Run(t.Context(), h, &strings.Builder{})
			var ie *sandbox.InfraError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want an infrastructure error about %q", err, tc.want)
			}
			_ = r.sb.Destroy(t.Context(), h)
		})
	}
}

// A pod the infrastructure lost — evicted for the node's memory, then deleted under the run —
// is started again on the same workspace, with a new token; the third pod's agent succeeds and
// its changes are taken. The agent's log says what happened.
func TestALostPodIsStartedAgain(t *testing.T) {
	r := newRig(t, "d1")
	spec := testSpec(t)
	h, err := r.sb.Prepare(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	var tokens []string
	go func() {
		for attempt := 1; attempt <= 3; attempt++ {
			if !waitFor(func() bool {
				p, err := r.cli.CoreV1().Pods(ns).Get(context.Background(), h.Name, metav1.GetOptions{})
				if err != nil || p.Status.Phase != "" {
					return false
				}
				_, serr := r.cli.CoreV1().Secrets(ns).Get(context.Background(), h.Name, metav1.GetOptions{})
				return serr == nil
			}) {
				t.Errorf("attempt %d: no new pod", attempt)
				return
			}
			if !r.watching(int32(attempt)) {
				t.Errorf("attempt %d: Run did not watch the pod", attempt)
				return
			}
			token := r.podToken(t, h.Name)
			tokens = append(tokens, token)
			switch attempt {
			case 1:
				r.setStatus(t, h.Name, corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "The node was low on resource: memory."})
			case 2:
				_ = r.cli.CoreV1().Pods(ns).Delete(context.Background(), h.Name, metav1.DeleteOptions{})
			case 3:
				trees := map[string]string{"workspace": t.TempDir(), "out": t.TempDir()}
				if err := carry.Fetch(context.Background(), r.url, token, trees); err != nil {
					t.Error(err)
				}
				_ = os.WriteFile(filepath.Join(trees["workspace"], "NEW"), []byte("third time\n"), 0o644)
				if err := carry.HandBack(context.Background(), r.url, token, trees); err != nil {
					t.Error(err)
				}
				r.setStatus(t, h.Name, terminated(0, "Completed"))
			}
		}
	}()
	var logs strings.Builder
	res, err := r.sb.Run(t.Context(), h, &logs)
	if err != nil {
		t.Fatalf("Run = %v, want the third pod's success", err)
	}
	if res.Outcome != sandbox.Success {
		t.Errorf("outcome %s", res.Outcome)
	}
	if got, _ := os.ReadFile(filepath.Join(spec.WorkspaceDir, "NEW")); string(got) != "third time\n" {
		t.Errorf("the third pod's change did not come back: %q", got)
	}
	if len(tokens) != 3 || tokens[0] == tokens[1] || tokens[1] == tokens[2] {
		t.Errorf("tokens %d, want a new one per pod", len(tokens))
	}
	for _, want := range []string{"Evicted", "attempt 2 of 3", "deleted before its agent ended", "attempt 3 of 3"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not say %q:\n%s", want, logs.String())
		}
	}
	_ = r.sb.Destroy(t.Context(), h)
}

// waitFor polls cond for up to 30 seconds: on a loaded machine (CI runs packages side by
// side, one of them thousands of pods) replacing a pod can take several.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

// Sweep removes what the policy calls removable — here, another daemon's whose lease expired
// — and keeps a live daemon's pods.
func TestSweepRemovesOnlyWhatThePolicyAllows(t *testing.T) {
	cli := fake.NewClientset()
	live, dead := newRigOn(t, cli, "live"), newRigOn(t, cli, "dead")
	a := testSpec(t)
	b := testSpec(t)
	b.JobID = "other"
	if _, err := live.sb.Prepare(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if _, err := dead.sb.Prepare(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	removed, err := live.sb.Sweep(t.Context(), func(l sandbox.Leftover) bool {
		id, _ := sandbox.DaemonOf(l.Owner)
		return id == "dead" && l.Store == "store-1" && l.RunID == "r1"
	})
	if err != nil {
		t.Fatal(err)
	}
	name := PodName("r1", "other")
	want := "pod " + name + ",secret " + name + ",networkpolicy " + name
	if strings.Join(removed, ",") != want {
		t.Errorf("removed %v, want %s", removed, want)
	}
	assertGone(t, live, name)
	if _, err := cli.CoreV1().Pods(ns).Get(t.Context(), PodName("r1", "audit[3]"), metav1.GetOptions{}); err != nil {
		t.Errorf("the live daemon's pod was swept: %v", err)
	}
}

func TestPodNamesAreValidStableAndDistinct(t *testing.T) {
	seen := map[string]string{}
	for _, job := range []string{"audit[3]", "audit[30]", "lead/plan", "lead~2", "UPPER_case", strings.Repeat("x", 200), "a", "-"} {
		name := PodName("r0123456789abcdef0123", job)
		if len(name) > 63 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || name[0] == '-' || name[len(name)-1] == '-' {
			t.Errorf("PodName(%q) = %q: not a DNS label", job, name)
		}
		if other, ok := seen[name]; ok {
			t.Errorf("jobs %q and %q share pod name %s", job, other, name)
		}
		seen[name] = job
		if PodName("r0123456789abcdef0123", job) != name {
			t.Errorf("PodName(%q) is not stable", job)
		}
		if v := LabelValue(job); !isLabelValue(v) {
			t.Errorf("LabelValue(%q) = %q: not a label value", job, v)
		}
	}
}

// An API server turning requests away for load (429) is waited out, not an agent's failure:
// the pod is made once it takes them.
func TestABusyAPIServerIsWaitedOut(t *testing.T) {
	cli := fake.NewClientset()
	refusals := 0
	cli.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if refusals < 3 {
			refusals++
			return true, nil, apierrors.NewTooManyRequests("busy", 1)
		}
		return false, nil, nil
	})
	r := newRigOn(t, cli, "d1")
	h, err := r.sb.Prepare(t.Context(), testSpec(t))
	if err != nil {
		t.Fatalf("Prepare with a busy API server: %v", err)
	}
	if refusals != 3 {
		t.Errorf("%d refusals, want 3 waited out", refusals)
	}
	r.pod(t, h.Name)
	cli.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "x", errors.New("no"))
	})
	spec := testSpec(t)
	spec.JobID = "other"
	if _, err := r.sb.Prepare(t.Context(), spec); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("a refusal that is not for load: %v, want it at once", err)
	}
}

// containerNamed is the pod's container called name; there must be one.
func containerNamed(ps corev1.PodSpec, name string) *corev1.Container {
	for i := range ps.Containers {
		if ps.Containers[i].Name == name {
			return &ps.Containers[i]
		}
	}
	panic("no container " + name)
}
