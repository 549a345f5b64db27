package kube

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentrunner/agentrunner/egress"
	"github.com/agentrunner/agentrunner/preset"
	"github.com/agentrunner/agentrunner/proxy"
	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/sandbox/kube/carry"
)

// playProxyPod stands in for the kubelet and the proxy's container: once the run's proxy pod
// exists it publishes an address, reads the token from the pod's Secret as the container
// would, dials the exchange with it and serves the real proxy over that channel. It returns
// when the proxy stopped (its channel ended), with Serve's error.
func (r *rig) playProxyPod(t *testing.T, runID, ip string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		var pod *corev1.Pod
		if !waitFor(func() bool {
			pods, _ := r.cli.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: LabelRole + "=" + RoleProxy + "," + LabelRun + "=" + runID})
			if pods != nil && len(pods.Items) == 1 {
				pod = &pods.Items[0]
			}
			return pod != nil
		}) {
			done <- io.ErrUnexpectedEOF
			return
		}
		r.setStatus(t, pod.Name, corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip})
		sec, err := r.cli.CoreV1().Secrets(ns).Get(context.Background(), pod.Name, metav1.GetOptions{})
		if err != nil {
			done <- err
			return
		}
		conn, err := carry.DialControl(context.Background(), r.url, string(sec.Data[secretTokenKey]), sec.Data[secretCertKey], string(sec.Data[secretProofKey]))
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		ctl := json.NewDecoder(conn)
		var fc proxy.FileConfig
		if err := ctl.Decode(&fc); err != nil {
			done <- err
			return
		}
		// Port 0: the test's proxy listens where it can; agents are told the pod's ports.
		fc.Listen, fc.KeysListen = "127.0.0.1:0", "127.0.0.1:0"
		done <- proxy.Serve(context.Background(), fc, slog.New(slog.DiscardHandler), ctl, conn)
	}()
	return done
}

// A run with allow-listed agents gets a proxy pod of its own, hardened like an agent's, that
// dials the exchange for its control channel: the model key travels only there (not in the
// pod, its Secret or its policy), the agent's configuration points at the pod's address, the
// channel answers, and the proxy stops and its pod goes when the run ends.
func TestARunsEgressProxyIsAPodThatDialsIn(t *testing.T) {
	r := newRig(t, "d1")
	const key = "sk-ant-real-key-of-the-run"
	api := preset.API{Provider: "anthropic", Upstream: "https://api.anthropic.com", KeyHeader: "x-api-key", BaseURLEnv: []string{"ANTHROPIC_BASE_URL"}, KeyEnv: []string{"ANTHROPIC_API_KEY"}}
	served := r.playProxyPod(t, "r1", "10.244.0.9")
	eg, err := r.sb.StartProxy(t.Context(), egress.RunSpec{RunID: "r1", Keys: []egress.Key{{API: api, Value: key}}, StartTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pods, _ := r.cli.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: LabelRole + "=" + RoleProxy})
	if len(pods.Items) != 1 {
		t.Fatalf("%d proxy pods, want 1", len(pods.Items))
	}
	pod := pods.Items[0]
	name := pod.Name
	c := pod.Spec.Containers[0]
	if !slices.Equal(c.Command, []string{"/runner", "proxy", "--dial"}) || c.Image != r.sb.opts.RunnerImage {
		t.Errorf("proxy container %s %v", c.Image, c.Command)
	}
	sc := c.SecurityContext
	if pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken || sc == nil || !*sc.ReadOnlyRootFilesystem ||
		*sc.AllowPrivilegeEscalation || len(sc.Capabilities.Drop) != 1 || !*pod.Spec.SecurityContext.RunAsNonRoot {
		t.Errorf("the proxy's pod is not hardened: %+v %+v", pod.Spec.SecurityContext, sc)
	}
	pol, err := r.cli.NetworkingV1().NetworkPolicies(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := pol.Spec.Ingress
	if len(in) != 1 || in[0].From[0].PodSelector.MatchLabels[LabelRun] != "r1" || len(in[0].Ports) != 2 || in[0].Ports[0].Port.IntValue() != egress.ProxyPort {
		t.Errorf("the proxy's ingress: %+v", in)
	}
	sec, err := r.cli.CoreV1().Secrets(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for what, obj := range map[string]any{"pod": pod, "secret": sec, "policy": pol} {
		raw, _ := json.Marshal(obj)
		if strings.Contains(string(raw), key) {
			t.Errorf("the %s holds the model key", what)
		}
	}
	if len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].Name != name {
		t.Errorf("the proxy's Secret is owned by %+v, want its pod", sec.OwnerReferences)
	}

	cfg, err := eg.AgentConfig(t.Context(), egress.Agent{JobID: "audit", Allow: []string{"api.github.com:443"}, APIs: []preset.API{api}})
	if err != nil {
		t.Fatal(err)
	}
	if u := cfg.Env["HTTPS_PROXY"]; !strings.HasSuffix(u, "@10.244.0.9:3128") {
		t.Errorf("HTTPS_PROXY %q does not point at the proxy pod", u)
	}
	if u := cfg.Env["ANTHROPIC_BASE_URL"]; !strings.HasPrefix(u, "http://10.244.0.9:8081/") || cfg.Env["ANTHROPIC_API_KEY"] != egress.Placeholder {
		t.Errorf("base URL %q, key %q", u, cfg.Env["ANTHROPIC_API_KEY"])
	}
	if _, err := eg.Blocked(t.Context(), "audit"); err != nil {
		t.Errorf("the control channel does not answer: %v", err)
	}
	if err := eg.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("the proxy ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy did not stop when its channel closed")
	}
	assertGone(t, r, name)
}

// A proxy that never dials in (its image missing on the node, its pod unable to reach the
// exchange) fails the run's start with what to check, and its objects are removed; one that
// ends at once says how.
func TestAProxyPodThatNeverDialsInFailsTheStart(t *testing.T) {
	r := newRig(t, "d1")
	_, err := r.sb.StartProxy(t.Context(), egress.RunSpec{RunID: "r1", StartTimeout: 500 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "did not dial the exchange") || !strings.Contains(err.Error(), "runner image") {
		t.Fatalf("err = %v", err)
	}
	if pods, secrets, policies := objectsOf(t, r); len(pods)+secrets+policies != 0 {
		t.Errorf("left: %d pods, %d secrets, %d policies", len(pods), secrets, policies)
	}

	go func() {
		var pods []corev1.Pod
		waitFor(func() bool { pods, _, _ = objectsOf(t, r); return len(pods) == 1 })
		p := pods[0]
		r.setStatus(t, p.Name, corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: "proxy",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", Message: "bad flag"}}}}})
	}()
	_, err = r.sb.StartProxy(t.Context(), egress.RunSpec{RunID: "r1", StartTimeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "exit 2") || !strings.Contains(err.Error(), "bad flag") {
		t.Fatalf("err = %v", err)
	}
}

// objectsOf lists the namespace's pods, and counts its Secrets and NetworkPolicies.
func objectsOf(t *testing.T, r *rig) (pods []corev1.Pod, secrets, policies int) {
	t.Helper()
	p, _ := r.cli.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	s, _ := r.cli.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{})
	n, _ := r.cli.NetworkingV1().NetworkPolicies(ns).List(context.Background(), metav1.ListOptions{})
	return p.Items, len(s.Items), len(n.Items)
}

// The control route takes one connection per token, secured by TLS to the certificate the
// daemon made for it and given the proxy's proof inside: a second dial with the same token, a
// guess or a plain GET are refused; an end that has the token but not the proof gets no
// channel; a proxy that meets an exchange without the pinned certificate gives up before
// sending anything.
func TestTheControlChannelOpensOnceForItsTokenOnly(t *testing.T) {
	r := newRig(t, "d1")
	token := NewToken()
	session, err := r.x.expectControl(token)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := carry.DialControl(t.Context(), r.url, token, session.id.CertPEM, session.id.Proof)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	select {
	case daemonSide := <-session.conn:
		defer daemonSide.Close()
		if _, err := conn.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(daemonSide, buf); err != nil || string(buf) != "ping\n" {
			t.Errorf("the daemon's side read %q, %v", buf, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the exchange did not hand the connection over")
	}
	for _, tc := range []struct {
		name, token, upgrade string
		want                 int
	}{
		{"the same token again", token, carry.ControlProtocol, http.StatusUnauthorized},
		{"a guess", NewToken(), carry.ControlProtocol, http.StatusUnauthorized},
		{"no upgrade", token, "", http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(http.MethodGet, r.url+carry.ControlRoute, nil)
		req.Header.Set("Authorization", "Bearer "+tc.token)
		if tc.upgrade != "" {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", tc.upgrade)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("%s: %s, want %d", tc.name, res.Status, tc.want)
		}
	}

	// The token without the proof (someone who saw the upgrade go by).
	token = NewToken()
	if session, err = r.x.expectControl(token); err != nil {
		t.Fatal(err)
	}
	other, _ := carry.NewControlIdentity()
	if c, err := carry.DialControl(t.Context(), r.url, token, session.id.CertPEM, other.Proof); err == nil {
		defer c.Close()
		_, _ = c.Read(make([]byte, 1)) // the daemon closes it
	}
	select {
	case c := <-session.conn:
		c.Close()
		t.Error("a channel was handed over without the proof")
	case <-time.After(500 * time.Millisecond):
	}

	// An exchange without the pinned certificate (someone posing as it).
	token = NewToken()
	if _, err = r.x.expectControl(token); err != nil {
		t.Fatal(err)
	}
	if c, err := carry.DialControl(t.Context(), r.url, token, other.CertPEM, other.Proof); err == nil || !strings.Contains(err.Error(), "not the runner's") {
		if c != nil {
			c.Close()
		}
		t.Errorf("a proxy went on with an exchange it cannot verify: %v", err)
	}
}

// An allow-listed agent's pod may reach the exchange and its run's proxy pod, on the proxy's
// two ports, and nothing else; its proxy settings (which hold its proxy token) come from its
// Secret, not the pod spec. Such a pod is never attached to when its job is claimed again:
// its proxy was the run's earlier one.
func TestAnAllowListedAgentReachesOnlyItsRunsProxy(t *testing.T) {
	r := newRig(t, "d1")
	spec := testSpec(t)
	spec.Network = sandbox.Network{Mode: sandbox.NetworkAllow, Allow: []string{"api.github.com:443"}, Proxy: "10.244.0.9",
		ProxyEnv: map[string]string{"HTTPS_PROXY": "http://tok123:x@10.244.0.9:3128", "NO_PROXY": "10.244.0.9"}}
	h, err := r.sb.Prepare(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	name := h.Name
	pol, err := r.cli.NetworkingV1().NetworkPolicies(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var toProxy int
	for _, e := range pol.Spec.Egress {
		for _, p := range e.To {
			if p.PodSelector != nil {
				toProxy++
				if p.PodSelector.MatchLabels[LabelRole] != RoleProxy || p.PodSelector.MatchLabels[LabelRun] != "r1" || len(e.Ports) != 2 {
					t.Errorf("egress rule %+v", e)
				}
			} else if p.IPBlock == nil {
				t.Errorf("egress rule to anything but the exchange or the proxy: %+v", e)
			}
		}
	}
	if toProxy != 1 || len(pol.Spec.Ingress) != 0 {
		t.Errorf("%d egress rules to the proxy, %d ingress rules", toProxy, len(pol.Spec.Ingress))
	}
	raw, _ := json.Marshal(r.pod(t, name).Spec)
	if strings.Contains(string(raw), "tok123") {
		t.Error("the pod spec holds the agent's proxy token")
	}
	agent := containerNamed(r.pod(t, name).Spec, agentContainer)
	var fromSecret bool
	for _, e := range agent.Env {
		if e.Name == "HTTPS_PROXY" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef.Name == name {
			fromSecret = true
		}
	}
	if !fromSecret {
		t.Error("HTTPS_PROXY does not come from the job's Secret")
	}
	if s, _ := r.cli.CoreV1().Secrets(ns).Get(t.Context(), name, metav1.GetOptions{}); string(s.Data["HTTPS_PROXY"]) != "http://tok123:x@10.244.0.9:3128" {
		t.Errorf("the Secret's HTTPS_PROXY is %q", s.Data["HTTPS_PROXY"])
	}
	// The fake API server gives no uids: mark the first pod to tell it from a new one.
	first := r.pod(t, name)
	first.Annotations["test/first"] = "yes"
	if _, err := r.cli.CoreV1().Pods(ns).Update(t.Context(), first, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	again := newRigOn(t, r.cli, "d2")
	h2, err := again.sb.Prepare(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer again.sb.Destroy(t.Context(), h2)
	if again.sb.podJob(h2).attached || again.pod(t, name).Annotations["test/first"] != "" {
		t.Error("an allow-listed agent's pod was attached to by the job claimed again")
	}

	// Only the Secret left (a daemon gone between the Secret and the pod): it holds an earlier
	// proxy's settings, so it is made again, not reused.
	_ = again.sb.Destroy(t.Context(), h2)
	stale := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{LabelRun: "r1"},
		Annotations: map[string]string{AnnotationJob: spec.JobID}}, Data: map[string][]byte{"HTTPS_PROXY": []byte("http://old:x@10.244.0.8:3128")}}
	if _, err := r.cli.CoreV1().Secrets(ns).Create(t.Context(), stale, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h3, err := again.sb.Prepare(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer again.sb.Destroy(t.Context(), h3)
	if s, _ := r.cli.CoreV1().Secrets(ns).Get(t.Context(), name, metav1.GetOptions{}); string(s.Data["HTTPS_PROXY"]) != spec.Network.ProxyEnv["HTTPS_PROXY"] {
		t.Errorf("the leftover Secret was reused: HTTPS_PROXY %q", s.Data["HTTPS_PROXY"])
	}

	spec.Network.Proxy = ""
	if _, err := r.sb.Prepare(t.Context(), spec); err == nil || !strings.Contains(err.Error(), "egress proxy") {
		t.Errorf("an allow-listed agent without a proxy: %v", err)
	}
}

// With agent images that carry the runner, an agent's pod is one container: the agent's
// image runs its own runner, which fills the workspace itself (no copy of the runner, no
// runner volume, no second container), hardened and gated as ever. When its agent's side
// refuses (125) and the exchange never served the workspace, the job is the infrastructure's
// failure, not the agent's: the agent never ran.
func TestAnImageThatCarriesTheRunnerMakesAOneContainerPod(t *testing.T) {
	r := newRig(t, "d1", func(o *Options) { o.RunnerInAgentImages = true })
	spec := testSpec(t)
	h, err := r.sb.Prepare(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer r.sb.Destroy(t.Context(), h)
	ps := r.pod(t, h.Name).Spec
	if len(ps.Containers) != 1 || len(ps.InitContainers) != 0 {
		t.Fatalf("%d containers, %d init containers, want the agent's alone", len(ps.Containers), len(ps.InitContainers))
	}
	c := ps.Containers[0]
	want := append([]string{carry.RunnerPath, carry.AgentCommand, carry.FetchFlag, "--"}, spec.Argv...)
	if c.Name != agentContainer || c.Image != spec.Image || !slices.Equal(c.Command, want) {
		t.Errorf("container %s %s %q, want the agent's image running %q", c.Name, c.Image, c.Command, want)
	}
	for _, m := range c.VolumeMounts {
		if m.MountPath == carry.RunnerDir {
			t.Errorf("%s is mounted over the image's own runner", carry.RunnerDir)
		}
	}
	if len(ps.Volumes) != 3 || c.SecurityContext == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("volumes %d, security %+v", len(ps.Volumes), c.SecurityContext)
	}
	var gated, token bool
	for _, e := range c.Env {
		gated = gated || e.Name == carry.EnvGate
		token = token || (e.Name == carry.EnvToken && e.ValueFrom != nil)
	}
	if !gated || !token {
		t.Errorf("gate %v, exchange token by reference %v", gated, token)
	}

	go func() {
		r.watching(1)
		r.setStatus(t, h.Name, terminated(125, "Error"))
	}()
	if _, err := r.sb.Run(t.Context(), h, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "never reached the pod") {
		t.Errorf("Run = %v, want the workspace's failure", err)
	}
}
