package kubetest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/docker/docker/client"

	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/internal/nettest"
)

// PauseImage holds each pod's namespaces on the real node (internal/kubetest/pause): the
// cluster's usual pause image cannot be pulled here.
const PauseImage = "agentrunner/pause:test"

// RealNodeLabel marks the real node; pods that must run real containers select it.
const RealNodeLabel = "agentrunner.io/test-node"

// Node is a real Kubernetes node: a kubelet and a containerd of its own (Debian's, CRI on;
// Docker's has CRI off) in a network namespace of the test's, pods wired by CNI ptp and
// host-local with their traffic masqueraded behind the node's address, and NetworkPolicy
// enforced by kube-router's firewall (iptables and ipset work on this kernel; policy
// controllers built on nftables queues or IPVS do not). Images reach it from Docker with
// Import, as `docker save | ctr import` would.
//
// Host and node share one link: HostIP is the host's end, where pods reach the test's servers
// (a daemon's exchange), and the kubelet reaches the API server through a forwarder there.
type Node struct {
	Name   string
	HostIP string
	IP     string

	c        *Cluster
	dir      string
	netns    string
	hostLink string
	cgroup   string
	sock     string
	procs    procs
	forward  net.Listener
	machine  *machineLock
	router   string
	// madeLogDir: the kubelet's fixed /var/log/containers was not there before the node.
	madeLogDir bool
}

var (
	nodeOnce sync.Once
	node     *Node
	nodeErr  error
)

// Node starts the real node (once per test binary) and waits until it is Ready; Stop ends it.
// Only one real node runs on a machine at a time (the kubelet changes machine-wide sysctls,
// which the node puts back): a second test binary waits for the first's to stop.
func (c *Cluster) Node(t testing.TB) *Node {
	t.Helper()
	nodeOnce.Do(func() {
		if err := nodeTools(); err != nil {
			nodeErr = err
			return
		}
		pause := dockertest.StaticImage(t, "github.com/agentrunner/agentrunner/internal/kubetest/pause", PauseImage, "pause")
		node, nodeErr = c.startNode()
		if nodeErr == nil {
			nodeErr = node.importImages(dockertest.Client(t), pause)
		}
		if nodeErr == nil {
			nodeErr = node.waitReady(3 * time.Minute)
		}
		if nodeErr == nil {
			nodeErr = node.startPolicyController(time.Minute)
		}
	})
	if nodeErr != nil {
		t.Fatalf("start a real Kubernetes node: %v", nodeErr)
	}
	return node
}

// nodeTools checks what the node runs besides the Kubernetes binaries; .ci/run installs them.
func nodeTools() error {
	var missing []string
	for _, p := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "ip", "nsenter", "iptables", "ipset"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	for _, p := range []string{"ptp", "host-local", "loopback"} {
		if !isExec(filepath.Join(cniBin, p)) {
			missing = append(missing, filepath.Join(cniBin, p))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the real node needs %s: apt-get install containerd runc containernetworking-plugins iptables ipset iproute2 util-linux (.ci/run does)", strings.Join(missing, ", "))
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("the real node needs root (network namespaces, mounts, cgroups)")
	}
	return nil
}

const cniBin = "/usr/lib/cni"

// The node's addresses: its link to the host is 10.231.<n>.0/30 (n chosen free), its pods'
// network 10.232.0.0/24, private to its network namespace.
const podCIDR = "10.232.0.0/24"

func (c *Cluster) startNode() (*Node, error) {
	kubelet, err := binary("kubelet")
	if err != nil {
		return nil, err
	}
	router, err := binary("kube-router")
	if err != nil {
		return nil, err
	}
	lock, err := lockMachine()
	if err != nil {
		return nil, err
	}
	// Short: containerd's socket path must fit a sockaddr.
	dir, err := os.MkdirTemp("", "kn-")
	if err != nil {
		lock.release()
		return nil, err
	}
	id := fmt.Sprintf("%d", os.Getpid())
	n := &Node{c: c, dir: dir, machine: lock, Name: "agentrunner-node-" + id, netns: "agentrunner-kt-" + id,
		cgroup: "agentrunner-kt-" + id, sock: filepath.Join(dir, "containerd.sock"), procs: procs{dir: dir}}
	ok := false
	defer func() {
		if !ok {
			n.stop()
		}
	}()
	if _, err := os.Stat(containerLogDir); os.IsNotExist(err) {
		n.madeLogDir = true
	}
	if err := n.link(); err != nil {
		return nil, err
	}
	if err := n.cgroups(); err != nil {
		return nil, err
	}
	if err := n.forwardAPIServer(); err != nil {
		return nil, err
	}
	if err := n.writeConfigs(); err != nil {
		return nil, err
	}
	if _, err := n.procs.run("containerd", "nsenter", "--net="+n.netnsPath(), "--", "containerd", "--config="+filepath.Join(dir, "containerd.toml")); err != nil {
		return nil, err
	}
	if err := n.waitContainerd(time.Minute); err != nil {
		return nil, err
	}
	if _, err := n.procs.run("kubelet", "nsenter", "--net="+n.netnsPath(), "--", kubelet,
		"--config="+filepath.Join(dir, "kubelet.yaml"), "--kubeconfig="+filepath.Join(dir, "node.kubeconfig"),
		"--root-dir="+filepath.Join(dir, "kubelet"), "--cert-dir="+filepath.Join(dir, "kubelet", "pki"),
		"--hostname-override="+n.Name, "--node-ip="+n.IP, "--node-labels="+RealNodeLabel+"=true", "--v=1"); err != nil {
		return nil, err
	}
	n.router = router
	ok = true
	return n, nil
}

func (n *Node) netnsPath() string { return "/run/netns/" + n.netns }

// sh runs a command of the node's set-up and says what failed.
func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// link makes the node's network namespace and its link to the host.
func (n *Node) link() error {
	used := map[string]bool{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			used[a.String()] = true
		}
	}
	for i := 1; i < 250 && n.HostIP == ""; i++ {
		if !used[fmt.Sprintf("10.231.%d.1/30", i)] {
			n.HostIP, n.IP = fmt.Sprintf("10.231.%d.1", i), fmt.Sprintf("10.231.%d.2", i)
		}
	}
	n.hostLink = "ar-kt-" + strings.TrimPrefix(n.netns, "agentrunner-kt-")
	if len(n.hostLink) > 15 {
		n.hostLink = n.hostLink[:15]
	}
	for _, step := range [][]string{
		{"ip", "netns", "add", n.netns},
		{"ip", "link", "add", n.hostLink, "type", "veth", "peer", "name", "eth0", "netns", n.netns},
		{"ip", "addr", "add", n.HostIP + "/30", "dev", n.hostLink},
		{"ip", "link", "set", n.hostLink, "up"},
		{"ip", "-n", n.netns, "link", "set", "lo", "up"},
		{"ip", "-n", n.netns, "addr", "add", n.IP + "/30", "dev", "eth0"},
		{"ip", "-n", n.netns, "link", "set", "eth0", "up"},
		{"ip", "-n", n.netns, "route", "add", "default", "via", n.HostIP},
		{"ip", "netns", "exec", n.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	} {
		if err := sh(step[0], step[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// cgroups makes the node's cgroup root in every hierarchy: its pods live beneath it, apart
// from the machine's (cgroup v1 here).
func (n *Node) cgroups() error {
	entries, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Mkdir(filepath.Join("/sys/fs/cgroup", e.Name(), n.cgroup), 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("make the node's cgroup: %w", err)
		}
	}
	return nil
}

// forwardAPIServer lets the node reach the API server, which listens on loopback only.
func (n *Node) forwardAPIServer() error {
	ln, err := net.Listen("tcp", net.JoinHostPort(n.HostIP, "0"))
	if err != nil {
		return err
	}
	n.forward = ln
	u, err := url.Parse(n.c.URL)
	if err != nil {
		return err
	}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", u.Host)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in); out.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return nil
}

func (n *Node) writeConfigs() error {
	server := "https://" + n.forward.Addr().String()
	files := map[string]string{
		"node.kubeconfig":             kubeconfigFor(server, adminToken),
		"containerd.toml":             fmt.Sprintf(containerdConfig, n.dir, n.dir, n.sock, PauseImage, cniBin, filepath.Join(n.dir, "cni")),
		"cni/10-agentrunner.conflist": fmt.Sprintf(cniConfig, podCIDR, filepath.Join(n.dir, "ipam")),
		"kubelet.yaml":                fmt.Sprintf(kubeletConfig, n.sock, podCIDR, "/"+n.cgroup, filepath.Join(n.dir, "pods")),
	}
	for name, data := range files {
		p := filepath.Join(n.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// The node's containerd: its own root, state and socket; CRI with the test's pause image,
// and restrict_oom_score_adj because the machine lacks CAP_SYS_RESOURCE.
const containerdConfig = `version = 2
root = "%s/containerd/root"
state = "%s/containerd/state"
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  disable_apparmor = true
  disable_hugetlb_controller = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`

// Pods get an address of podCIDR on a point-to-point link; what they send beyond it leaves
// masqueraded as the node.
const cniConfig = `{
  "cniVersion": "0.4.0",
  "name": "agentrunner-test",
  "plugins": [{
    "type": "ptp",
    "ipMasq": true,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}
  }]
}
`

// The kubelet: cgroup v1 (failCgroupV1 false), its pods under the node's own cgroup root,
// eviction thresholds that a busy CI disk does not trip. Its API answers anyone who reaches the
// node's address (only the host can): the API server fetches logs through it.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%s
podCIDR: %q
cgroupDriver: cgroupfs
cgroupRoot: %q
failCgroupV1: false
failSwapOn: false
podLogsDir: %q
resolvConf: ""
readOnlyPort: 0
healthzPort: 0
maxPods: 250
kubeAPIQPS: 100
kubeAPIBurst: 200
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
`

func (n *Node) waitContainerd(limit time.Duration) error {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if name := n.procs.exited(); name != "" {
			return fmt.Errorf("%s exited\n%s", name, n.procs.tail())
		}
		if exec.Command("ctr", "--address", n.sock, "version").Run() == nil {
			return nil
		}
	}
	return fmt.Errorf("containerd did not answer within %s\n%s", limit, n.procs.tail())
}

// Import copies Docker images into the node's containerd, as `docker save | ctr import` does:
// pods run them with imagePullPolicy IfNotPresent or Never, with no registry.
func (n *Node) Import(t testing.TB, images ...string) {
	t.Helper()
	if err := n.importImages(dockertest.Client(t), images...); err != nil {
		t.Fatal(err)
	}
}

// importImages streams the images from Docker (its API, as every test does) into containerd.
func (n *Node) importImages(cli client.APIClient, images ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tarball, err := cli.ImageSave(ctx, images)
	if err != nil {
		return fmt.Errorf("save %s from Docker: %w", strings.Join(images, " "), err)
	}
	defer tarball.Close()
	load := exec.CommandContext(ctx, "ctr", "--address", n.sock, "-n", "k8s.io", "images", "import", "-")
	var out strings.Builder
	load.Stdin, load.Stdout, load.Stderr = tarball, &out, &out
	if err := load.Run(); err != nil {
		return fmt.Errorf("ctr images import %s: %v: %s", strings.Join(images, " "), err, out.String())
	}
	return nil
}

func (n *Node) waitReady(limit time.Duration) error {
	cli, err := kubernetes.NewForConfig(n.c.Admin())
	if err != nil {
		return err
	}
	ctx := context.Background()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if name := n.procs.exited(); name != "" {
			return fmt.Errorf("%s exited\n%s", name, n.procs.tail())
		}
		node, err := cli.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil || !nodeReady(node) {
			continue
		}
		// Admission tainted the new node not-ready; no node lifecycle controller lifts it here.
		var taints []corev1.Taint
		for _, t := range node.Spec.Taints {
			if t.Key != corev1.TaintNodeNotReady {
				taints = append(taints, t)
			}
		}
		if len(taints) != len(node.Spec.Taints) {
			node.Spec.Taints = taints
			if _, err := cli.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
				continue
			}
		}
		return nil
	}
	return fmt.Errorf("the node was not Ready within %s\n%s", limit, n.procs.tail())
}

// startPolicyController starts kube-router's firewall, which finds its node by name (so once
// the kubelet registered it), and waits until its chains are in the node's iptables.
func (n *Node) startPolicyController(limit time.Duration) error {
	if _, err := n.procs.run("kube-router", "nsenter", "--net="+n.netnsPath(), "--", n.router,
		"--kubeconfig="+filepath.Join(n.dir, "node.kubeconfig"), "--hostname-override="+n.Name,
		"--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false",
		"--metrics-port=0", "--health-port=0"); err != nil {
		return err
	}
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if name := n.procs.exited(); name != "" {
			return fmt.Errorf("%s exited\n%s", name, n.procs.tail())
		}
		out, _ := exec.Command("ip", "netns", "exec", n.netns, "iptables", "-S").Output()
		if strings.Contains(string(out), "KUBE-ROUTER-FORWARD") {
			return nil
		}
	}
	return fmt.Errorf("kube-router's firewall was not set up within %s\n%s", limit, n.procs.tail())
}

// Logs is the end of the node's processes' logs, for a failing test's message.
func (n *Node) Logs() string { return n.procs.tail() }

// AcceptAll listens on the host's end of the node's link and accepts (and closes) every
// connection until the test ends: an address pods reach unless their network policy cuts them
// off (a policy canary, or a probe of what a confined agent must not reach).
func (n *Node) AcceptAll(t testing.TB) string {
	t.Helper()
	return nettest.AcceptAll(t, net.JoinHostPort(n.HostIP, "0")).Addr().String()
}
