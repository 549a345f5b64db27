package kube

import (
	"context"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/agentrunner/agentrunner/egress"
	"github.com/agentrunner/agentrunner/internal/kubetest"
	"github.com/agentrunner/agentrunner/sandbox"
)

func TestMain(m *testing.M) {
	code := m.Run()
	kubetest.Stop()
	os.Exit(code)
}

// The agents' namespace deploy/kubernetes makes.
const agentsNamespace = "agentrunner-agents"

var (
	applyOnce sync.Once
	applyErr  error
)

// liveCluster is the real API server with the README's manifests applied (deploy/kubernetes),
// and clients as its admin and as the daemon's service account.
func liveCluster(t testing.TB) (admin, daemon kubernetes.Interface) {
	t.Helper()
	c := kubetest.Start(t)
	var err error
	if admin, err = kubernetes.NewForConfig(c.Admin()); err != nil {
		t.Fatal(err)
	}
	if daemon, err = kubernetes.NewForConfig(c.As(c.Admin(), kubetest.DaemonAccount)); err != nil {
		t.Fatal(err)
	}
	applyOnce.Do(func() { applyErr = c.Apply("../../deploy/kubernetes/*.yaml") })
	if applyErr != nil {
		t.Fatalf("apply deploy/kubernetes: %v", applyErr)
	}
	return admin, daemon
}

func liveSandbox(t *testing.T, cli Client, owner string) *Sandbox {
	t.Helper()
	x := &Exchange{}
	srv := httptest.NewServer(x)
	t.Cleanup(srv.Close)
	sb, err := New(cli, Options{Namespace: agentsNamespace, RunnerImage: "localhost/agentrunner/runner:test", Exchange: x, ExchangeURL: srv.URL,
		Owner: sandbox.OwnerLabels(sandbox.DaemonOwner(owner), "store-1")})
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

func liveSpec(t testing.TB, job, network string) *sandbox.Spec {
	s := testSpec(t)
	s.RunID, s.JobID, s.Network = "r"+strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-")[:20], job, sandbox.Network{Mode: network}
	return s
}

// On a real API server, as the daemon's service account with the README's RBAC: the pods the
// sandbox makes pass validation and Pod Security "restricted" admission, with every network
// mode; the Secret and the NetworkPolicy are owned by the pod; Destroy leaves nothing. The
// egress proxy's pod is admitted too (with no node it never dials in, and its start fails
// saying so, not for a refusal), and leaves nothing either.
func TestOnARealAPIServerTheSandboxsPodsAreAdmitted(t *testing.T) {
	admin, daemon := liveCluster(t)
	sb := liveSandbox(t, daemon, "d1")
	for _, network := range []string{sandbox.NetworkNone, sandbox.NetworkOpen, sandbox.NetworkAllow} {
		spec := liveSpec(t, "audit["+network+"]", network)
		if network == sandbox.NetworkAllow {
			spec.Network.Proxy, spec.Network.ProxyEnv = "10.244.0.9", map[string]string{"HTTPS_PROXY": "http://tok:x@10.244.0.9:3128"}
		}
		h, err := sb.Prepare(t.Context(), spec)
		if err != nil {
			t.Fatalf("network %s: Prepare as the daemon's service account: %v", network, err)
		}
		pod, err := admin.CoreV1().Pods(agentsNamespace).Get(t.Context(), h.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		secret, err := admin.CoreV1().Secrets(agentsNamespace).Get(t.Context(), h.Name, metav1.GetOptions{})
		if err != nil || len(secret.OwnerReferences) != 1 || secret.OwnerReferences[0].UID != pod.UID {
			t.Errorf("network %s: the Secret is not owned by the pod: %v %+v", network, err, secret)
		}
		np, err := admin.NetworkingV1().NetworkPolicies(agentsNamespace).Get(t.Context(), h.Name, metav1.GetOptions{})
		switch {
		case network == sandbox.NetworkOpen && !apierrors.IsNotFound(err):
			t.Errorf("an open agent got a network policy: %v", err)
		case network != sandbox.NetworkOpen && (err != nil || len(np.OwnerReferences) != 1 || np.OwnerReferences[0].UID != pod.UID):
			t.Errorf("the network policy is missing or not owned by the pod: %v", err)
		}
		if err := sb.Destroy(t.Context(), h); err != nil {
			t.Fatal(err)
		}
		for _, get := range []func() error{
			func() error {
				_, err := admin.CoreV1().Secrets(agentsNamespace).Get(t.Context(), h.Name, metav1.GetOptions{})
				return err
			},
			func() error {
				_, err := admin.NetworkingV1().NetworkPolicies(agentsNamespace).Get(t.Context(), h.Name, metav1.GetOptions{})
				return err
			},
		} {
			if err := get(); !apierrors.IsNotFound(err) {
				t.Errorf("network %s: left after Destroy: %v", network, err)
			}
		}
	}
	_, err := sb.StartProxy(t.Context(), egress.RunSpec{RunID: "r-admitted-proxy", StartTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "did not dial the exchange") {
		t.Errorf("the proxy's start on a cluster without nodes: %v, want it admitted and waiting in vain", err)
	}
	sel := metav1.ListOptions{LabelSelector: LabelRole + "=" + RoleProxy}
	if pods, err := admin.CoreV1().Pods(agentsNamespace).List(t.Context(), sel); err != nil || len(pods.Items) != 0 {
		t.Errorf("proxy pods left: %v %v", pods, err)
	}
}

// The pod owns its Secret and NetworkPolicy for real: when the pod is deleted by anyone (here
// the admin, as if no daemon were left to), the cluster's garbage collector deletes them.
func TestOnARealAPIServerDeletingThePodDeletesWhatItOwns(t *testing.T) {
	admin, daemon := liveCluster(t)
	sb := liveSandbox(t, daemon, "d1")
	h, err := sb.Prepare(t.Context(), liveSpec(t, "owned", sandbox.NetworkNone))
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CoreV1().Pods(agentsNamespace).Delete(t.Context(), h.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, serr := admin.CoreV1().Secrets(agentsNamespace).Get(t.Context(), h.Name, metav1.GetOptions{})
		_, nerr := admin.NetworkingV1().NetworkPolicies(agentsNamespace).Get(t.Context(), h.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(serr) && apierrors.IsNotFound(nerr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after the pod went, its Secret (%v) or NetworkPolicy (%v) is still there", serr, nerr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_ = sb.Destroy(t.Context(), h)
}

// The namespace refuses a pod that is not hardened, whoever creates it — even the cluster's
// admin: Pod Security is the API server's, not the runner's goodwill.
func TestOnARealAPIServerAnUnhardenedPodIsRefused(t *testing.T) {
	admin, _ := liveCluster(t)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "plain"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "agent", Image: "localhost/agent:1"}}}}
	_, err := admin.CoreV1().Pods(agentsNamespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `violates PodSecurity "restricted`) {
		t.Fatalf("an unhardened pod: %v, want it refused by Pod Security restricted", err)
	}
}

// The daemon's role is the least it needs: what the sandbox does in the agents' namespace, and
// nothing elsewhere or beyond.
func TestTheDaemonsRoleIsTheLeastItNeeds(t *testing.T) {
	_, daemon := liveCluster(t)
	for _, tc := range []struct {
		verb, group, resource, sub, ns string
		allowed                        bool
	}{
		{"create", "", "pods", "", agentsNamespace, true},
		{"watch", "", "pods", "", agentsNamespace, true},
		{"get", "", "pods", "log", agentsNamespace, true},
		{"patch", "", "secrets", "", agentsNamespace, true},
		{"create", "networking.k8s.io", "networkpolicies", "", agentsNamespace, true},
		{"update", "", "pods", "", agentsNamespace, false},
		{"create", "", "pods", "exec", agentsNamespace, false},
		{"create", "", "serviceaccounts", "token", agentsNamespace, false},
		{"create", "apps", "deployments", "", agentsNamespace, false},
		{"list", "", "secrets", "", "agentrunner", false},
		{"list", "", "secrets", "", "kube-system", false},
		{"create", "", "pods", "", "default", false},
		{"get", "", "nodes", "", "", false},
		{"create", "rbac.authorization.k8s.io", "roles", "", agentsNamespace, false},
	} {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: tc.ns, Verb: tc.verb, Group: tc.group, Resource: tc.resource, Subresource: tc.sub}}}
		got, err := daemon.AuthorizationV1().SelfSubjectAccessReviews().Create(t.Context(), review, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Allowed != tc.allowed {
			t.Errorf("%s %s/%s %s in %q: allowed %v, want %v", tc.verb, tc.resource, tc.sub, tc.group, tc.ns, got.Status.Allowed, tc.allowed)
		}
	}
}

// Sweep on the real API: the label selector finds the sandbox's objects, the policy keeps a
// live daemon's and removes a gone one's.
func TestOnARealAPIServerSweepKeepsTheLiveAndRemovesTheGone(t *testing.T) {
	admin, daemon := liveCluster(t)
	live, gone := liveSandbox(t, daemon, "live"), liveSandbox(t, daemon, "gone")
	keep, err := live.Prepare(t.Context(), liveSpec(t, "keep", sandbox.NetworkNone))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Destroy(context.Background(), keep)
	drop, err := gone.Prepare(t.Context(), liveSpec(t, "drop", sandbox.NetworkNone))
	if err != nil {
		t.Fatal(err)
	}
	removed, err := live.Sweep(t.Context(), func(l sandbox.Leftover) bool { return l.Owner == sandbox.DaemonOwner("gone") })
	if err != nil {
		t.Fatal(err)
	}
	// The garbage collector may delete the Secret and the NetworkPolicy before the sweep
	// lists them, once the pod is gone: what counts is that all of the gone daemon's objects
	// go, and none of the live one's.
	if len(removed) == 0 || removed[0] != "pod "+drop.Name || strings.Contains(strings.Join(removed, ","), keep.Name) {
		t.Errorf("swept %v, want the gone daemon's pod first and nothing of the live one's", removed)
	}
	for _, get := range []func() error{
		func() error {
			_, err := admin.CoreV1().Secrets(agentsNamespace).Get(t.Context(), drop.Name, metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := admin.NetworkingV1().NetworkPolicies(agentsNamespace).Get(t.Context(), drop.Name, metav1.GetOptions{})
			return err
		},
	} {
		deadline := time.Now().Add(time.Minute)
		for err := get(); !apierrors.IsNotFound(err); err = get() {
			if time.Now().After(deadline) {
				t.Fatalf("the gone daemon's object is left: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	pods, err := admin.CoreV1().Pods(agentsNamespace).List(t.Context(), metav1.ListOptions{LabelSelector: LabelDaemon + "=live"})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Name != keep.Name {
		t.Errorf("the live daemon's pods after the sweep: %v %v", pods, err)
	}
}
