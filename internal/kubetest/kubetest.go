// Package kubetest runs a real Kubernetes control plane for tests: etcd,
// kube-apiserver with RBAC and the default admission plugins (Pod Security among them), and
// kube-controller-manager's garbage collector and service account controllers, and
// kube-scheduler (all built by scripts/k8s-binaries.sh at the versions tools/k8s pins; etcd
// at the release this Kubernetes wants: Debian's 3.4 lacks the watch progress requests that
// streamed lists need, and clients such as kwok's stall without them). There is no kubelet: pods are admitted, stored and scheduled, never run —
// unless a test starts kwok (Kwok), which plays the kubelet of fake nodes. Tests that need it
// fail with what to do when a binary is missing; they never skip.
//
// Typical use:
//
//	c := kubetest.Start(t)          // one per test binary (TestMain), shared
//	admin := c.Admin()              // a system:masters rest.Config
//	daemon := c.As(admin, "system:serviceaccount:agentrunner:agentrunner")
package kubetest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// EnvBin names the directory holding the binaries (make test sets it from
// scripts/k8s-binaries.sh).
const EnvBin = "AGENTRUNNER_K8S_BIN"

const adminToken = "agentrunner-test-admin"

// DaemonAccount is the daemon's service account in deploy/kubernetes; the API server also
// takes a static token for it, so a `runner serve` of a test can authenticate as it
// (Kubeconfig).
const DaemonAccount = "system:serviceaccount:agentrunner:agentrunner"

const daemonToken = "agentrunner-test-daemon"

// Cluster is a running control plane.
type Cluster struct {
	URL   string
	dir   string
	procs procs
}

var (
	once    sync.Once
	shared  *Cluster
	initErr error
)

// Start returns the control plane shared by the test binary, starting it on first use; Stop
// (from TestMain) ends it.
func Start(t testing.TB) *Cluster {
	t.Helper()
	once.Do(func() { shared, initErr = start() })
	if initErr != nil {
		t.Fatalf("start the Kubernetes control plane: %v", initErr)
	}
	return shared
}

// Stop ends the shared control plane and the real node, if they started, and removes their
// files.
func Stop() {
	if node != nil {
		node.stop()
	}
	if shared != nil {
		shared.stop()
	}
}

func binary(name string) (string, error) {
	if dir := os.Getenv(EnvBin); dir != "" {
		if p := filepath.Join(dir, name); isExec(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	switch name {
	default:
		return "", fmt.Errorf("%s not found: build it with scripts/k8s-binaries.sh and set %s to the directory it prints (make test does)", name, EnvBin)
	}
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func start() (*Cluster, error) {
	etcd, err := binary("etcd")
	if err != nil {
		return nil, err
	}
	apiserver, err := binary("kube-apiserver")
	if err != nil {
		return nil, err
	}
	controllers, err := binary("kube-controller-manager")
	if err != nil {
		return nil, err
	}
	scheduler, err := binary("kube-scheduler")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, procs: procs{dir: dir}}
	ok := false
	defer func() {
		if !ok {
			c.stop()
		}
	}()
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	client, peer, secure := fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1]), ports[2]
	if err := c.run("etcd", etcd, "--name=default", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer, "--initial-cluster=default="+peer,
		"--unsafe-no-fsync"); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"sa.key": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		"sa.pub": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
		"tokens.csv": []byte(adminToken + `,admin,admin,"system:masters"` + "\n" +
			daemonToken + "," + DaemonAccount + `,daemon,"system:serviceaccounts,system:serviceaccounts:agentrunner"` + "\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	if err := c.run("kube-apiserver", apiserver,
		"--etcd-servers="+client,
		fmt.Sprintf("--secure-port=%d", secure), "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(dir, "sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		"--token-auth-file="+filepath.Join(dir, "tokens.csv"),
		"--enable-priority-and-fairness=false",
		// Thousands of pods at once on two cores: queue rather than turn requests away (the
		// sandbox waits out a 429, but the tests' own clients need not).
		"--max-requests-inflight=1000", "--max-mutating-requests-inflight=500",
		// The real node's name resolves nowhere: logs are fetched from its address.
		"--kubelet-preferred-address-types=InternalIP",
	); err != nil {
		return nil, err
	}
	c.URL = fmt.Sprintf("https://127.0.0.1:%d", secure)
	if err := c.waitReady(3 * time.Minute); err != nil {
		return nil, err
	}
	// The garbage collector deletes what a deleted pod owns; the service account controller
	// makes each namespace's default account, which admission wants for every pod.
	for name, token := range map[string]string{"kubeconfig": adminToken, "daemon.kubeconfig": daemonToken} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(kubeconfigFor(c.URL, token)), 0o600); err != nil {
			return nil, err
		}
	}
	if err := c.run("kube-controller-manager", controllers, "--kubeconfig="+filepath.Join(dir, "kubeconfig"),
		"--controllers=garbagecollector,serviceaccount", "--leader-elect=false", "--secure-port=0",
		"--use-service-account-credentials=false"); err != nil {
		return nil, err
	}
	if err := c.run("kube-scheduler", scheduler, "--kubeconfig="+filepath.Join(dir, "kubeconfig"), "--leader-elect=false", "--secure-port=0"); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// run starts a process of the control plane.
func (c *Cluster) run(name, path string, args ...string) error {
	_, err := c.procs.run(name, path, args...)
	return err
}

func (c *Cluster) waitReady(limit time.Duration) error {
	cfg := c.Admin()
	tr, err := rest.TransportFor(cfg)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	deadline := time.Now().Add(limit)
	var last string
	for time.Now().Before(deadline) {
		if name := c.procs.exited(); name != "" {
			return fmt.Errorf("%s exited\n%s", name, c.tail())
		}
		res, err := hc.Get(c.URL + "/readyz")
		if err == nil {
			body := make([]byte, 4096)
			n, _ := res.Body.Read(body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%s: %s", res.Status, body[:n])
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the API server was not ready within %s (%s)\n%s", limit, last, c.tail())
}

// tail is the end of each process's log, for an error message.
func (c *Cluster) tail() string { return c.procs.tail() }

func (c *Cluster) stop() {
	c.procs.stop(10 * time.Second)
	os.RemoveAll(c.dir)
}

func kubeconfigFor(server, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: user, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: user}}]
current-context: test
`, server, token)
}

// DaemonKubeconfig is a kubeconfig file that authenticates as DaemonAccount.
func (c *Cluster) DaemonKubeconfig() string { return filepath.Join(c.dir, "daemon.kubeconfig") }

// Admin is a rest.Config of a member of system:masters (RBAC does not apply to it).
func (c *Cluster) Admin() *rest.Config {
	return &rest.Config{Host: c.URL, BearerToken: adminToken, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 200, Burst: 400}
}

// As is cfg impersonating a service account ("system:serviceaccount:<ns>:<name>") or a user,
// with the groups the API server would give it.
func (c *Cluster) As(cfg *rest.Config, user string) *rest.Config {
	out := rest.CopyConfig(cfg)
	groups := []string{"system:authenticated"}
	if sa, ok := strings.CutPrefix(user, "system:serviceaccount:"); ok {
		ns, _, _ := strings.Cut(sa, ":")
		groups = append(groups, "system:serviceaccounts", "system:serviceaccounts:"+ns)
	}
	out.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return out
}
