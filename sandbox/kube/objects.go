package kube

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/sandbox/kube/carry"
)

// Inside the pod: where the runner's own executable is copied for the agent's container, and
// the names of the containers and volumes.
const (
	agentContainer  = "agent"
	fetchContainer  = "workspace"
	volWorkspace    = "workspace"
	volOutput       = "out"
	volTmp          = "tmp"
	volRunner       = "runner"
	secretTokenKey  = "agentrunner-exchange-token"
	maxEnvPrompt    = 100 << 10
	outputSizeLimit = 256 << 20
)

// job is what the objects of one agent are made from.
type job struct {
	spec  *sandbox.Spec
	name  string // the pod's, the Secret's and the NetworkPolicy's
	res   sandbox.Resources
	uid   int64
	gid   int64
	owner map[string]string // sandbox.LabelOwner and LabelStore values
	opts  *Options
}

func (j *job) labels() map[string]string {
	l := map[string]string{
		LabelRun: LabelValue(j.spec.RunID),
		LabelJob: LabelValue(j.spec.JobID),
		LabelPod: j.name,
	}
	if id, ok := sandbox.DaemonOf(j.owner[sandbox.LabelOwner]); ok {
		l[LabelDaemon] = LabelValue(id)
	}
	return l
}

func (j *job) meta() metav1.ObjectMeta {
	a := map[string]string{AnnotationJob: j.spec.JobID}
	if o := j.owner[sandbox.LabelOwner]; o != "" {
		a[AnnotationOwner] = o
	}
	if s := j.owner[sandbox.LabelStore]; s != "" {
		a[AnnotationStore] = s
	}
	return metav1.ObjectMeta{Name: j.name, Namespace: j.opts.Namespace, Labels: j.labels(), Annotations: a}
}

// secret holds the job's secrets, its proxy settings (which carry its proxy token) and its
// exchange token: the pod reads them by reference, never as plain values in its spec.
func (j *job) secret(token string) *corev1.Secret {
	data := map[string][]byte{secretTokenKey: []byte(token)}
	for k, v := range j.secretEnv() {
		data[k] = []byte(v)
	}
	m := j.meta()
	m.Labels = maps.Clone(m.Labels)
	delete(m.Labels, LabelPod) // the policy selects pods only; keep the Secret out of it anyway
	return &corev1.Secret{ObjectMeta: m, Type: corev1.SecretTypeOpaque, Data: data}
}

// secretEnv is the agent's environment that comes from its Secret: its secrets, and with
// allow its proxy settings over them, as the Docker sandbox orders them.
func (j *job) secretEnv() map[string]string {
	m := maps.Clone(j.spec.Secrets)
	if m == nil {
		m = map[string]string{}
	}
	if j.spec.Network.Mode == sandbox.NetworkAllow {
		maps.Copy(m, j.spec.Network.ProxyEnv)
	}
	for _, k := range contractEnv {
		delete(m, k)
	}
	return m
}

// networkPolicy confines the pod: with network none it may reach only the exchange (the
// workspace in, the changes out); with allow, only the run's egress proxy pod besides, on its
// two ports. No ingress. An open agent gets no policy.
func (j *job) networkPolicy() *networkingv1.NetworkPolicy {
	tcp := corev1.ProtocolTCP
	var egress []networkingv1.NetworkPolicyEgressRule
	for _, cidr := range j.opts.exchangeCIDRs {
		port := intstr.FromInt32(j.opts.exchangePort)
		egress = append(egress, networkingv1.NetworkPolicyEgressRule{
			To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: cidr}}},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
		})
	}
	if j.spec.Network.Mode == sandbox.NetworkAllow {
		egress = append(egress, networkingv1.NetworkPolicyEgressRule{
			To:    []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelRun: LabelValue(j.spec.RunID), LabelRole: RoleProxy}}}},
			Ports: proxyPorts(),
		})
	}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: j.meta(),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{LabelPod: j.name}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Egress:      egress,
		},
	}
}

// pod is the agent's pod, hardened to pass Pod Security "restricted": non-root, no privilege
// escalation, every capability dropped, seccomp RuntimeDefault, a read-only root filesystem,
// no service account token; the workspace an emptyDir bounded by the disk limit, /tmp in
// memory; a deadline the API server enforces even when no daemon is left to.
func (j *job) pod() *corev1.Pod {
	s := j.spec
	no := false
	sec := restricted(j.uid, j.gid)
	limits := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewMilliQuantity(int64(j.res.CPUs*1000), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(j.res.Memory, resource.BinarySI),
	}
	disk := resource.NewQuantity(j.res.Disk, resource.BinarySI)
	tmp := resource.NewQuantity(j.opts.TmpSize, resource.BinarySI)
	out := resource.NewQuantity(outputSizeLimit, resource.BinarySI)
	mounts := []corev1.VolumeMount{
		{Name: volWorkspace, MountPath: sandbox.WorkspacePath},
		{Name: volOutput, MountPath: sandbox.OutputPath},
		{Name: volTmp, MountPath: "/tmp"},
		{Name: volRunner, MountPath: carry.RunnerDir},
	}
	tokenRef := &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: j.name}, Key: secretTokenKey}}
	exchangeEnv := []corev1.EnvVar{
		{Name: carry.EnvURL, Value: j.opts.ExchangeURL},
		{Name: carry.EnvToken, ValueFrom: tokenRef},
	}
	agentEnv := append(j.env(), exchangeEnv...)
	if s.Network.Mode != sandbox.NetworkOpen {
		gate := j.opts.PolicyCanary
		if gate == "" {
			gate = carry.GateService
		}
		agentEnv = append(agentEnv, corev1.EnvVar{Name: carry.EnvGate, Value: gate})
	}
	deadline := int64((s.Timeout + j.opts.DeadlineMargin).Seconds())
	grace := int64(j.opts.StopGrace.Seconds())
	volumes := []corev1.Volume{
		{Name: volWorkspace, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: disk}}},
		{Name: volOutput, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: out}}},
		{Name: volTmp, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: tmp}}},
		{Name: volRunner, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: resource.NewQuantity(128<<20, resource.BinarySI)}}},
	}
	agent := corev1.Container{
		Name:            agentContainer,
		Image:           s.Image,
		ImagePullPolicy: pullPolicy(s.PullPolicy),
		Command:         append([]string{carry.RunnerPath, carry.AgentCommand, "--"}, s.Argv...),
		WorkingDir:      sandbox.WorkspacePath,
		Env:             agentEnv,
		VolumeMounts:    mounts,
		SecurityContext: sec,
		Resources:       corev1.ResourceRequirements{Limits: limits, Requests: limits},
	}
	var containers []corev1.Container
	if j.opts.RunnerInAgentImages {
		// One container: the image's own runner fills the workspace, no copy to leave.
		agent.Command = append([]string{carry.RunnerPath, carry.AgentCommand, carry.FetchFlag, "--"}, s.Argv...)
		agent.VolumeMounts = mounts[:3]
		containers, volumes = []corev1.Container{agent}, volumes[:3]
	} else {
		// The workspace's container comes first and holds up the agent's with its postStart
		// hook until the workspace is filled (see package carry for why not an init
		// container).
		containers = []corev1.Container{{
			Name:            fetchContainer,
			Image:           j.opts.RunnerImage,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Command:         []string{"/runner", carry.FetchCommand},
			Env:             exchangeEnv,
			VolumeMounts:    mounts,
			SecurityContext: sec,
			Resources:       corev1.ResourceRequirements{Limits: smallLimits(), Requests: smallRequests()},
			Lifecycle: &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{
				Exec: &corev1.ExecAction{Command: []string{"/runner", carry.WaitCommand}}}},
		}, agent}
	}
	return &corev1.Pod{
		ObjectMeta: j.meta(),
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			NodeSelector:                  j.opts.NodeSelector,
			Tolerations:                   j.opts.Tolerations,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			ActiveDeadlineSeconds:         &deadline,
			TerminationGracePeriodSeconds: &grace,
			SecurityContext:               restrictedPod(j.uid, j.gid, true),
			Containers:                    containers,
			Volumes:                       volumes,
		},
	}
}

// restricted is a container's hardening, what Pod Security "restricted" asks and more:
// non-root as uid:gid, no privilege escalation, every capability dropped, seccomp
// RuntimeDefault, a read-only root filesystem.
func restricted(uid, gid int64) *corev1.SecurityContext {
	no, yes := false, true
	return &corev1.SecurityContext{
		RunAsNonRoot:             &yes,
		RunAsUser:                &uid,
		RunAsGroup:               &gid,
		AllowPrivilegeEscalation: &no,
		Privileged:               &no,
		ReadOnlyRootFilesystem:   &yes,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// restrictedPod is the pod's side of restricted; with volumes, its volumes are the group's.
func restrictedPod(uid, gid int64, volumes bool) *corev1.PodSecurityContext {
	yes := true
	p := &corev1.PodSecurityContext{RunAsNonRoot: &yes, RunAsUser: &uid, RunAsGroup: &gid,
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	if volumes {
		p.FSGroup = &gid
	}
	return p
}

// smallRequests are what the container that fills the workspace asks the scheduler for: next
// to nothing. It ends once the agent's container started, but a pod's requests are the sum
// of its containers' for the pod's whole life, and an agent's pod must not hold half a core
// more than its agent for minutes (thousands of pods: hundreds of cores). The pod's QoS class
// is Burstable for it.
func smallRequests() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("10m"),
		corev1.ResourceMemory: resource.MustParse("32Mi"),
	}
}

// smallLimits bound the container that fills the workspace.
func smallLimits() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("500m"),
		corev1.ResourceMemory: resource.MustParse("256Mi"),
	}
}

// contractEnv are the sandbox's own variables, which win over anything declared.
var contractEnv = []string{"HOME", sandbox.EnvOutputDir, sandbox.EnvPrompt}

// env is the agent's environment as in the Docker sandbox: what the routine declares, the
// secrets and proxy settings by reference to the job's Secret, HOME, the output directory and
// the prompt.
func (j *job) env() []corev1.EnvVar {
	s := j.spec
	plain := map[string]string{}
	maps.Copy(plain, s.Env)
	plain["HOME"] = "/tmp"
	plain[sandbox.EnvOutputDir] = sandbox.OutputPath
	delete(plain, sandbox.EnvPrompt)
	if len(s.Prompt) <= maxEnvPrompt {
		plain[sandbox.EnvPrompt] = s.Prompt
	}
	secret := j.secretEnv()
	for k := range secret {
		delete(plain, k)
	}
	var out []corev1.EnvVar
	for _, k := range slices.Sorted(maps.Keys(plain)) {
		out = append(out, corev1.EnvVar{Name: k, Value: plain[k]})
	}
	for _, k := range slices.Sorted(maps.Keys(secret)) {
		out = append(out, corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: j.name}, Key: k}}})
	}
	return out
}

func pullPolicy(p string) corev1.PullPolicy {
	switch p {
	case sandbox.PullNever:
		return corev1.PullNever
	case sandbox.PullAlways:
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// parseUser reads "uid[:gid]"; Kubernetes needs numbers, and a non-zero uid for "restricted".
func parseUser(user string) (uid, gid int64, err error) {
	u, g, hasGID := strings.Cut(user, ":")
	if uid, err = strconv.ParseInt(u, 10, 64); err != nil || uid <= 0 {
		return 0, 0, fmt.Errorf("user %q: on Kubernetes an agent runs as a numeric, non-root uid (uid[:gid])", user)
	}
	gid = uid
	if hasGID {
		if gid, err = strconv.ParseInt(g, 10, 64); err != nil || gid < 0 {
			return 0, 0, fmt.Errorf("user %q: the gid is not a number", user)
		}
	}
	return uid, gid, nil
}
