// Package kube is the sandbox on Kubernetes: each agent runs as a bare pod in one namespace,
// hardened to pass Pod Security "restricted", with its secrets in a Secret of its own, a
// NetworkPolicy that confines it, and its workspace carried to and from the daemon by the
// Exchange (a pod has no disk in common with the daemon). Pods are named from the run and job
// ids, so that a job claimed again, by a restarted daemon or another one, finds its pod
// instead of starting a second; their deadline is the API server's to enforce, so it holds
// when every daemon is gone.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	networkingv1client "k8s.io/client-go/kubernetes/typed/networking/v1"

	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/sandbox/kube/carry"
)

// Options configure the Kubernetes sandbox. Zero values mean the defaults.
type Options struct {
	// Namespace holds the agents' pods; it should enforce Pod Security "restricted".
	Namespace string
	// Owner annotates every object with who made it (sandbox.OwnerLabels), for Sweep.
	Owner map[string]string
	// RunnerImage holds the static runner at /runner: the pods' first container fills the
	// workspace with it and leaves a copy for the agent's container. The egress proxy's pods
	// run it too.
	RunnerImage string
	// RunnerInAgentImages says the agents' images carry this runner at carry.RunnerPath
	// (/.agentrunner/runner): each agent's pod is then one container, which fills its
	// workspace itself, and starts about as fast as a bare pod of the image.
	RunnerInAgentImages bool
	// Exchange serves the workspaces; ExchangeURL is how pods reach it (http://host:port).
	Exchange    *Exchange
	ExchangeURL string
	// Resources fill the zero fields of a Spec's (sandbox.DefaultResources otherwise).
	Resources sandbox.Resources
	// Timeout is used when a Spec has none (1h); StopGrace is the pod's termination grace
	// period (10s); DeadlineMargin is added to the timeout for the pod's activeDeadlineSeconds,
	// so that the daemon stops an agent on time itself and the API server only when no daemon
	// is left to (2m: the workspace's fetch is inside the deadline).
	Timeout, StopGrace, DeadlineMargin time.Duration
	// TmpSize bounds the memory-backed /tmp (256 MiB).
	TmpSize int64
	// HandBackWait bounds the wait for a finished pod's changes (30s).
	HandBackWait time.Duration
	// NodeSelector and Tolerations place the agents' pods (nodes set aside for agents).
	NodeSelector map[string]string
	Tolerations  []corev1.Toleration
	// PolicyCanary is an address (host:port) a pod reaches unless its NetworkPolicy is in
	// force: the agent's container waits until it cannot, so an agent never starts before its
	// confinement does (enforcement can lag a pod's start by seconds). Empty: the API server's
	// Service (KUBERNETES_SERVICE_HOST), which pods reach through kube-proxy.
	PolicyCanary string
	// InfraRetries is how many times a pod the infrastructure lost (an eviction, a lost node,
	// a pod deleted under the run) is started again before the job fails (2; -1: never).
	InfraRetries int
	Logger       *slog.Logger

	exchangeCIDRs []string
	exchangePort  int32
}

// Client is the part of the API the sandbox uses: a clientset (kubernetes.Interface, or its
// fake) is one; Connect makes a lighter one, without the other API groups' clients.
type Client interface {
	CoreV1() corev1client.CoreV1Interface
	NetworkingV1() networkingv1client.NetworkingV1Interface
}

// Sandbox runs agents as pods. It is safe for concurrent use.
type Sandbox struct {
	cli  Client
	opts Options
	log  *slog.Logger

	mu   sync.Mutex
	pods map[*sandbox.Handle]*podJob
}

var _ sandbox.Sandbox = (*Sandbox)(nil)

// podJob is what Prepare made for one handle.
type podJob struct {
	job    *job
	limits carry.Limits // of what travels through the exchange
	token  string
	x      *exchangeJob
	// attached: the pod was there already (a job claimed again); it is followed, not made.
	attached bool
}

// New returns the sandbox on cli. The exchange's address must resolve: the pods'
// NetworkPolicies allow exactly it.
func New(cli Client, opts Options) (*Sandbox, error) {
	if opts.Namespace == "" {
		return nil, errors.New("kubernetes sandbox: no namespace")
	}
	if opts.RunnerImage == "" || opts.Exchange == nil || opts.ExchangeURL == "" {
		return nil, errors.New("kubernetes sandbox: the runner image and the exchange (its handler and the URL pods reach it at) are required")
	}
	u, err := url.Parse(opts.ExchangeURL)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" {
		return nil, fmt.Errorf("kubernetes sandbox: exchange URL %q: want http://host:port", opts.ExchangeURL)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	p, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("kubernetes sandbox: exchange URL %q: bad port", opts.ExchangeURL)
	}
	opts.exchangePort = int32(p)
	ips, err := net.LookupIP(u.Hostname())
	if err != nil {
		return nil, fmt.Errorf("kubernetes sandbox: resolve the exchange's host %q (the pods' network policies allow its addresses): %w", u.Hostname(), err)
	}
	for _, ip := range ips {
		if ip.To4() != nil {
			opts.exchangeCIDRs = append(opts.exchangeCIDRs, ip.String()+"/32")
		} else {
			opts.exchangeCIDRs = append(opts.exchangeCIDRs, ip.String()+"/128")
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Resources = opts.Resources.Or(sandbox.DefaultResources)
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&opts.Timeout, time.Hour}, {&opts.StopGrace, 10 * time.Second}, {&opts.DeadlineMargin, 2 * time.Minute}, {&opts.HandBackWait, 30 * time.Second}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if opts.TmpSize <= 0 {
		opts.TmpSize = 256 << 20
	}
	switch {
	case opts.InfraRetries == 0:
		opts.InfraRetries = 2
	case opts.InfraRetries < 0:
		opts.InfraRetries = 0
	}
	return &Sandbox{cli: cli, opts: opts, log: opts.Logger, pods: map[*sandbox.Handle]*podJob{}}, nil
}

func (s *Sandbox) validate(spec *sandbox.Spec) error {
	if err := spec.CheckCommon(); err != nil {
		return err
	}
	bad := func(field, format string, args ...any) error {
		return &sandbox.SpecError{JobID: spec.JobID, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case len(spec.Argv) == 0:
		return bad("Argv", "empty: on Kubernetes an agent needs its command (a preset's, or command:), the image's own entrypoint cannot be wrapped")
	case spec.WorkspaceLayers != nil:
		return bad("WorkspaceLayers", "overlay workspaces are a Docker host's; on Kubernetes the workspace is a full checkout (workspace: checkout)")
	case spec.WorkspaceDir == "" || spec.OutputDir == "":
		return bad("WorkspaceDir", "the workspace and the output directory are required")
	}
	switch spec.Network.Mode {
	case "", sandbox.NetworkNone, sandbox.NetworkOpen:
	case sandbox.NetworkAllow:
		if spec.Network.Proxy == "" || len(spec.Network.ProxyEnv) == 0 {
			return bad("Network", "an allow-listed agent needs its run's egress proxy (StartProxy, through the runner's egress), and has none")
		}
	default:
		return bad("Network.Mode", "%q is not none, open or allow", spec.Network.Mode)
	}
	return nil
}

// Prepare makes the agent's NetworkPolicy, Secret and pod, in that order (the pod must never
// run before its policy exists), then hands the first two to the pod as owner: deleting the
// pod deletes them. A pod already there for the same run and job is attached to instead.
// The pod starts at once; its first container waits for the workspace until Run says it is
// ready.
func (s *Sandbox) Prepare(ctx context.Context, spec *sandbox.Spec) (*sandbox.Handle, error) {
	if err := s.validate(spec); err != nil {
		return nil, err
	}
	user := spec.User
	if user == "" {
		user = sandbox.DefaultUser
	}
	uid, gid, err := parseUser(user)
	if err != nil {
		return nil, &sandbox.SpecError{JobID: spec.JobID, Field: "User", Msg: err.Error()}
	}
	res := spec.Resources.Or(s.opts.Resources)
	sp := *spec
	if sp.Timeout <= 0 {
		sp.Timeout = s.opts.Timeout
	}
	j := &job{spec: &sp, name: PodName(spec.RunID, spec.JobID), res: res, uid: uid, gid: gid, owner: s.opts.Owner, opts: &s.opts}
	if err := os.WriteFile(filepath.Join(spec.OutputDir, sandbox.PromptFile), []byte(spec.Prompt), 0o644); err != nil {
		return nil, &sandbox.InfraError{Op: "write the prompt", Object: fmt.Sprintf("for job %q", spec.JobID), Err: err}
	}
	pj := &podJob{job: j, limits: carry.Limits{Bytes: res.Disk + outputSizeLimit, Entries: 2_000_000}}
	pod, err := s.create(ctx, pj)
	if err != nil {
		return nil, err
	}
	if pj.attached {
		s.log.Info("attached to the job's pod, started before (a job claimed again)", "pod", j.name, "run_id", spec.RunID, "job", spec.JobID)
	}
	h := &sandbox.Handle{ID: string(pod.UID), Name: j.name, Spec: spec}
	s.mu.Lock()
	s.pods[h] = pj
	s.mu.Unlock()
	return h, nil
}

// create makes the job's NetworkPolicy, Secret (with a new token, kept in pj) and pod, or
// attaches to the pod already there, and hands the first two to the pod.
func (s *Sandbox) create(ctx context.Context, pj *podJob) (*corev1.Pod, error) {
	j, spec, ns := pj.job, pj.job.spec, s.opts.Namespace
	fail := func(op string, err error) (*corev1.Pod, error) {
		s.opts.Exchange.unregister(pj.token)
		s.deleteAll(context.WithoutCancel(ctx), j.name)
		return nil, &sandbox.InfraError{Op: op, Object: fmt.Sprintf("for job %q", spec.JobID), Err: err}
	}
	// The policy and the Secret at once: both must exist before the pod, and each request is a
	// round trip an agent's start waits for. The exchange knows the token before any pod can
	// hold it: a pod's first fetch may come the moment it exists.
	s.serve(pj, NewToken())
	var polErr, secErr error
	var oldSecret *corev1.Secret
	var wg sync.WaitGroup
	if spec.Network.Mode != sandbox.NetworkOpen {
		wg.Add(1)
		go func() {
			defer wg.Done()
			polErr = whenFree(ctx, func() error {
				_, err := s.cli.NetworkingV1().NetworkPolicies(ns).Create(ctx, j.networkPolicy(), metav1.CreateOptions{})
				return err
			})
			if apierrors.IsAlreadyExists(polErr) {
				polErr = nil
			}
		}()
	}
	secErr = whenFree(ctx, func() error {
		_, err := s.cli.CoreV1().Secrets(ns).Create(ctx, j.secret(pj.token), metav1.CreateOptions{})
		return err
	})
	if apierrors.IsAlreadyExists(secErr) {
		secErr = whenFree(ctx, func() (err error) {
			oldSecret, err = s.cli.CoreV1().Secrets(ns).Get(ctx, j.name, metav1.GetOptions{})
			return err
		})
	}
	wg.Wait()
	switch {
	case polErr != nil:
		return fail("create network policy", polErr)
	case secErr != nil:
		return fail("create secret", secErr)
	case oldSecret != nil:
		if oldSecret.Annotations[AnnotationJob] != spec.JobID || oldSecret.Labels[LabelRun] != LabelValue(spec.RunID) {
			s.opts.Exchange.unregister(pj.token)
			return nil, &sandbox.InfraError{Op: "create secret", Object: fmt.Sprintf("for job %q", spec.JobID),
				Err: fmt.Errorf("secret %s exists and is not this job's", j.name)}
		}
		if spec.Network.Mode == sandbox.NetworkAllow {
			// Its proxy settings are an earlier proxy's, gone with its daemon: start afresh,
			// as with such a pod below.
			if err := s.clear(ctx, pj); err != nil {
				return fail("remove an earlier attempt's objects", err)
			}
			return s.create(ctx, pj)
		}
		s.serve(pj, string(oldSecret.Data[secretTokenKey])) // the pod, if any, holds this one
	}
	var pod *corev1.Pod
	err := whenFree(ctx, func() (err error) {
		pod, err = s.cli.CoreV1().Pods(ns).Create(ctx, j.pod(), metav1.CreateOptions{})
		return err
	})
	if apierrors.IsAlreadyExists(err) {
		err = whenFree(ctx, func() (err error) {
			pod, err = s.cli.CoreV1().Pods(ns).Get(ctx, j.name, metav1.GetOptions{})
			return err
		})
		if err == nil && (pod.Annotations[AnnotationJob] != spec.JobID || pod.Labels[LabelRun] != LabelValue(spec.RunID)) {
			err = fmt.Errorf("pod %s exists and is not this job's", j.name)
		}
		if err != nil {
			s.opts.Exchange.unregister(pj.token)
			return nil, &sandbox.InfraError{Op: "attach to pod", Object: fmt.Sprintf("for job %q", spec.JobID), Err: err}
		}
		if pod.DeletionTimestamp != nil || spec.Network.Mode == sandbox.NetworkAllow {
			// Going (swept, or an earlier attempt's): not one to attach to, and its Secret and
			// policy go with it. Once all are gone the name is free for a new pod. An
			// allow-listed agent's pod is never attached to: its proxy was its run's earlier
			// one, which ended with the control channel of the daemon that started it, so the
			// agent could not reach out any more.
			if err := s.clear(ctx, pj); err != nil {
				return fail("remove the pod being deleted and its objects", err)
			}
			return s.create(ctx, pj)
		}
		pj.attached = true
	} else if err != nil {
		return fail("create pod", err)
	}
	if err := s.giveToPod(ctx, pod, spec.Network.Mode != sandbox.NetworkOpen); err != nil {
		return fail("hand the secret and the network policy to their pod", err)
	}
	return pod, nil
}

// again replaces a pod the infrastructure lost (evicted, its node gone, deleted under the run)
// with a new one on the same, untouched workspace: the old pod never handed anything back.
func (s *Sandbox) again(ctx context.Context, pj *podJob) error {
	if err := s.clear(ctx, pj); err != nil {
		return err
	}
	pj.attached = false
	if _, err := s.create(ctx, pj); err != nil {
		return err
	}
	pj.x.markReady(nil)
	return nil
}

// clear removes the job's pod, Secret and policy and waits until they are gone, so that its
// name is free for new ones; the exchange forgets the job's token.
func (s *Sandbox) clear(ctx context.Context, pj *podJob) error {
	s.opts.Exchange.unregister(pj.token)
	if err := s.deleteAll(ctx, pj.job.name); err != nil {
		return err
	}
	return s.waitGone(ctx, pj.job.name, true)
}

// giveToPod makes pod the owner of its Secret and, with policy, of its NetworkPolicy (both
// of its name), so that deleting the pod deletes them.
func (s *Sandbox) giveToPod(ctx context.Context, pod *corev1.Pod, policy bool) error {
	ns := s.opts.Namespace
	owner := []byte(fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"Pod","name":%q,"uid":%q}]}}`, pod.Name, pod.UID))
	var polErr error
	var wg sync.WaitGroup
	if policy {
		wg.Add(1)
		go func() { // at once: each is a round trip an agent's start waits for
			defer wg.Done()
			polErr = whenFree(ctx, func() error {
				_, err := s.cli.NetworkingV1().NetworkPolicies(ns).Patch(ctx, pod.Name, types.MergePatchType, owner, metav1.PatchOptions{})
				return err
			})
		}()
	}
	secErr := whenFree(ctx, func() error {
		_, err := s.cli.CoreV1().Secrets(ns).Patch(ctx, pod.Name, types.MergePatchType, owner, metav1.PatchOptions{})
		return err
	})
	wg.Wait()
	return errors.Join(secErr, polErr)
}

// waitGone waits until the pod called name (and, with secret, its Secret) no longer exists:
// only then is the name free again.
func (s *Sandbox) waitGone(ctx context.Context, name string, secret bool) error {
	for {
		_, perr := s.cli.CoreV1().Pods(s.opts.Namespace).Get(ctx, name, metav1.GetOptions{})
		serr := perr
		if secret {
			_, serr = s.cli.CoreV1().Secrets(s.opts.Namespace).Get(ctx, name, metav1.GetOptions{})
		}
		if apierrors.IsNotFound(perr) && apierrors.IsNotFound(serr) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// serve makes token the job's, known to the exchange (the previous one, if any, no longer).
func (s *Sandbox) serve(pj *podJob, token string) {
	if pj.token != "" {
		s.opts.Exchange.unregister(pj.token)
	}
	pj.token = token
	pj.x = s.opts.Exchange.register(token, pj.job.spec.WorkspaceDir, pj.job.spec.OutputDir, pj.limits)
}

// Destroy deletes the pod, its Secret and its NetworkPolicy if still there (their owner
// reference deletes them too, where a garbage collector runs).
func (s *Sandbox) Destroy(ctx context.Context, h *sandbox.Handle) error {
	if h == nil {
		return nil
	}
	s.mu.Lock()
	pj := s.pods[h]
	delete(s.pods, h)
	s.mu.Unlock()
	if pj != nil {
		s.opts.Exchange.unregister(pj.token)
	}
	return s.deleteAll(ctx, h.Name)
}

func (s *Sandbox) deleteAll(ctx context.Context, name string) error {
	ns := s.opts.Namespace
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	var errs []error
	keep := func(err error) {
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	keep(whenFree(ctx, func() error { return s.cli.CoreV1().Pods(ns).Delete(ctx, name, opts) }))
	keep(whenFree(ctx, func() error { return s.cli.CoreV1().Secrets(ns).Delete(ctx, name, opts) }))
	keep(whenFree(ctx, func() error { return s.cli.NetworkingV1().NetworkPolicies(ns).Delete(ctx, name, opts) }))
	return errors.Join(errs...)
}

func (s *Sandbox) podJob(h *sandbox.Handle) *podJob {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pods[h]
}
