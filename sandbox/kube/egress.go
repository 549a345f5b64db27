package kube

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/agentrunner/agentrunner/egress"
	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/sandbox/kube/carry"
)

// A run with allow-listed agents gets an egress proxy pod of its own: the runner's image
// running `runner proxy --dial`, which dials the exchange for its control channel, so that its
// configuration, the model API keys in it, travels only there — never in a pod spec, a Secret
// or an image. Its NetworkPolicy lets in only the run's own pods and lets it out anywhere (its
// own address filter refuses the cluster's and the node's private addresses); an
// allow-listed agent's policy lets it out to this pod only (networkPolicy). The proxy stops
// when its control channel ends (the run's end, or its daemon's), and its pod is deleted.

// LabelRole marks the runner's own pods that are not an agent's.
const (
	LabelRole = "agentrunner.io/role"
	RoleProxy = "egress-proxy"
)

// proxyStartWait bounds the wait for the proxy's pod to dial in (its image on the node, its
// scheduling) when the RunSpec sets no StartTimeout of its own.
var proxyStartWait = 2 * time.Minute

var _ interface {
	StartProxy(context.Context, egress.RunSpec) (*egress.Egress, error)
} = (*Sandbox)(nil)

// ProxyName is the name of a proxy pod of run: a hash of the run id keeps it unique per run,
// and a random suffix per start, so that a daemon taking a run over never meets the pod of
// the proxy that served the run before (its control channel ended with its daemon).
func ProxyName(runID string) string {
	sum := sha256.Sum256([]byte(runID))
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "ar-proxy-" + dnsPart(runID, 28) + "-" + hex.EncodeToString(sum[:])[:10] + "-" + hex.EncodeToString(b)
}

// StartProxy starts run spec.RunID's egress proxy as a pod and returns its Egress once the
// proxy dialed in, took its configuration and listens. A proxy pod left by an earlier start
// for the same run is deleted first: its control channel is gone, so nobody controls it.
func (s *Sandbox) StartProxy(ctx context.Context, spec egress.RunSpec) (*egress.Egress, error) {
	if spec.RunID == "" {
		return nil, errors.New("start egress proxy: empty run id")
	}
	if err := s.deleteProxies(ctx, spec.RunID); err != nil {
		return nil, fmt.Errorf("start the egress proxy of run %s: delete an earlier proxy: %w", spec.RunID, err)
	}
	p := &proxyPod{name: ProxyName(spec.RunID), runID: spec.RunID, opts: &s.opts}
	token := NewToken()
	session, err := s.opts.Exchange.expectControl(token)
	if err != nil {
		return nil, fmt.Errorf("start the egress proxy of run %s: %w", spec.RunID, err)
	}
	logCtx, stopLog := context.WithCancel(context.WithoutCancel(ctx))
	stop := func(ctx context.Context) error {
		stopLog()
		s.opts.Exchange.forgetControl(token, session)
		return s.deleteAll(ctx, p.name)
	}
	fail := func(op string, err error) (*egress.Egress, error) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return nil, errors.Join(fmt.Errorf("start the egress proxy of run %s: %s: %w", spec.RunID, op, err), stop(dctx))
	}
	ns := s.opts.Namespace
	if err := whenFree(ctx, func() error {
		_, err := s.cli.NetworkingV1().NetworkPolicies(ns).Create(ctx, p.networkPolicy(), metav1.CreateOptions{})
		return err
	}); err != nil {
		return fail("create its network policy", err)
	}
	if err := whenFree(ctx, func() error {
		_, err := s.cli.CoreV1().Secrets(ns).Create(ctx, p.secret(token, session.id), metav1.CreateOptions{})
		return err
	}); err != nil {
		return fail("create its secret", err)
	}
	var pod *corev1.Pod
	if err := whenFree(ctx, func() (err error) {
		pod, err = s.cli.CoreV1().Pods(ns).Create(ctx, p.pod(), metav1.CreateOptions{})
		return err
	}); err != nil {
		return fail("create its pod", err)
	}
	if err := s.giveToPod(ctx, pod, true); err != nil {
		return fail("hand its secret and policy to its pod", err)
	}
	wait := spec.StartTimeout
	if wait <= 0 {
		wait = proxyStartWait
	}
	s.log.Info("egress proxy pod created; waiting for it to dial in", "run_id", spec.RunID, "pod", p.name, "limit", wait)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	conn, ip, err := s.awaitProxy(wctx, p.name, session)
	if err != nil {
		return fail("wait for its pod "+p.name, err)
	}
	s.log.Info("egress proxy pod dialed in", "run_id", spec.RunID, "pod", p.name, "ip", ip)
	go s.relayProxyLog(logCtx, p.name, spec.RunID)
	return egress.Controlled(ctx, spec, conn, ip, stop)
}

// relayProxyLog follows the proxy container's log (JSON lines) into the daemon's, as the
// Docker proxy's is, until ctx ends; the pod's log goes with the pod.
func (s *Sandbox) relayProxyLog(ctx context.Context, name, runID string) {
	rc, err := s.cli.CoreV1().Pods(s.opts.Namespace).GetLogs(name, &corev1.PodLogOptions{Container: proxyContainer, Follow: true}).Stream(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("follow the egress proxy's log", "run_id", runID, "pod", name, "err", err)
		}
		return
	}
	defer rc.Close()
	egress.RelayLogs(s.log.With("run_id", runID, "component", "egress"), "proxy: ", rc)
}

const proxyContainer = "proxy"

// awaitProxy waits until the proxy's pod dialed the exchange and has its address published,
// or failed.
func (s *Sandbox) awaitProxy(ctx context.Context, name string, session *controlSession) (io.ReadWriteCloser, string, error) {
	var conn io.ReadWriteCloser
	pods := s.cli.CoreV1().Pods(s.opts.Namespace)
	fail := func(err error) (io.ReadWriteCloser, string, error) {
		if conn != nil {
			conn.Close()
		}
		return nil, "", err
	}
	for {
		// A failed Get is asked again: the API server may be busy.
		if pod, err := pods.Get(ctx, name, metav1.GetOptions{}); err == nil {
			switch why := hopelessWait(pod); {
			case pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded:
				return fail(fmt.Errorf("the proxy ended (%s): %s", pod.Status.Phase, proxyWhy(pod)))
			case why != "":
				return fail(fmt.Errorf("the proxy's container cannot start: %s", why))
			case conn != nil && pod.Status.PodIP != "":
				return conn, pod.Status.PodIP, nil
			}
		}
		select {
		case conn = <-session.conn:
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			if conn == nil {
				return fail(fmt.Errorf("it did not dial the exchange (%v): is the runner image on the nodes, and does the pod reach %s?", ctx.Err(), s.opts.ExchangeURL))
			}
			return fail(fmt.Errorf("its address was not published (%v)", ctx.Err()))
		}
	}
}

// hopelessWait is why the pod's container waits for what will never come ("": it does not).
func hopelessWait(pod *corev1.Pod) string {
	for _, c := range pod.Status.ContainerStatuses {
		if w := c.State.Waiting; w != nil && hopeless[w.Reason] {
			return w.Reason + ": " + w.Message
		}
	}
	return ""
}

// proxyWhy is the end of the proxy container's state, for an error.
func proxyWhy(pod *corev1.Pod) string {
	for _, c := range pod.Status.ContainerStatuses {
		if t := c.State.Terminated; t != nil {
			return fmt.Sprintf("exit %d, %s %s", t.ExitCode, t.Reason, t.Message)
		}
	}
	return pod.Status.Reason + " " + pod.Status.Message
}

// deleteProxies deletes the proxy pods of run (their Secrets and policies too).
func (s *Sandbox) deleteProxies(ctx context.Context, runID string) error {
	sel := metav1.ListOptions{LabelSelector: LabelRun + "=" + LabelValue(runID) + "," + LabelRole + "=" + RoleProxy}
	pods, err := s.cli.CoreV1().Pods(s.opts.Namespace).List(ctx, sel)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pods.Items {
		errs = append(errs, s.deleteAll(ctx, p.Name))
	}
	return errors.Join(errs...)
}

// proxyPod is what the objects of one run's proxy are made from.
type proxyPod struct {
	name, runID string
	opts        *Options
}

func (p *proxyPod) meta() metav1.ObjectMeta {
	l := map[string]string{LabelRun: LabelValue(p.runID), LabelRole: RoleProxy, LabelPod: p.name}
	a := map[string]string{}
	if id, ok := sandbox.DaemonOf(p.opts.Owner[sandbox.LabelOwner]); ok {
		l[LabelDaemon] = LabelValue(id)
	}
	if o := p.opts.Owner[sandbox.LabelOwner]; o != "" {
		a[AnnotationOwner] = o
	}
	if st := p.opts.Owner[sandbox.LabelStore]; st != "" {
		a[AnnotationStore] = st
	}
	return metav1.ObjectMeta{Name: p.name, Namespace: p.opts.Namespace, Labels: l, Annotations: a}
}

// secret holds what the proxy dials in with: the token of its upgrade, the certificate it
// pins and the proof it gives inside TLS.
func (p *proxyPod) secret(token string, id *carry.ControlIdentity) *corev1.Secret {
	m := p.meta()
	m.Labels = maps.Clone(m.Labels)
	delete(m.Labels, LabelPod)
	delete(m.Labels, LabelRole) // the agents' policies select the proxy by role: pods only
	return &corev1.Secret{ObjectMeta: m, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{
		secretTokenKey: []byte(token), secretCertKey: id.CertPEM, secretProofKey: []byte(id.Proof)}}
}

const (
	secretCertKey  = "agentrunner-control-cert"
	secretProofKey = "agentrunner-control-proof"
)

// networkPolicy lets the run's own pods in, to the proxy's two ports, and the proxy out
// anywhere: where it may go is its address filter's to decide, per agent.
func (p *proxyPod) networkPolicy() *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: p.meta(),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{LabelPod: p.name}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelRun: LabelValue(p.runID)}}}},
				Ports: proxyPorts(),
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{}},
		},
	}
}

// proxyPorts are the proxy's two ports: the forward proxy and the key endpoints.
func proxyPorts() []networkingv1.NetworkPolicyPort {
	tcp := corev1.ProtocolTCP
	var ports []networkingv1.NetworkPolicyPort
	for _, n := range []int32{egress.ProxyPort, egress.KeysPort} {
		port := intstr.FromInt32(n)
		ports = append(ports, networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &port})
	}
	return ports
}

// pod is the proxy's pod, hardened as an agent's (Pod Security "restricted"), as nobody.
func (p *proxyPod) pod() *corev1.Pod {
	no := false
	nobody := int64(65534)
	ref := func(key string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: p.name}, Key: key}}
	}
	grace := int64(5)
	return &corev1.Pod{
		ObjectMeta: p.meta(),
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			NodeSelector:                  p.opts.NodeSelector,
			Tolerations:                   p.opts.Tolerations,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			TerminationGracePeriodSeconds: &grace,
			SecurityContext:               restrictedPod(nobody, nobody, false),
			Containers: []corev1.Container{{
				Name:            proxyContainer,
				Image:           p.opts.RunnerImage,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{"/runner", "proxy", "--dial"},
				Env: []corev1.EnvVar{
					{Name: carry.EnvURL, Value: p.opts.ExchangeURL},
					{Name: carry.EnvToken, ValueFrom: ref(secretTokenKey)},
					{Name: carry.EnvControlCert, ValueFrom: ref(secretCertKey)},
					{Name: carry.EnvControlProof, ValueFrom: ref(secretProofKey)},
				},
				Ports: []corev1.ContainerPort{
					{Name: "proxy", ContainerPort: egress.ProxyPort, Protocol: corev1.ProtocolTCP},
					{Name: "keys", ContainerPort: egress.KeysPort, Protocol: corev1.ProtocolTCP},
				},
				SecurityContext: restricted(nobody, nobody),
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("512Mi")},
				},
			}},
		},
	}
}
