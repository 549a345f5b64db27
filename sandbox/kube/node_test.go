package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/agentrunner/agentrunner/egress"
	"github.com/agentrunner/agentrunner/internal/dockertest"
	"github.com/agentrunner/agentrunner/internal/kubetest"
	"github.com/agentrunner/agentrunner/internal/syncbuf"
	"github.com/agentrunner/agentrunner/preset"
	"github.com/agentrunner/agentrunner/sandbox"
)

// nodeRig is the sandbox on a real node: the API server with the README's manifests, the
// kubelet and containerd with the runner's and the test agent's images, the sandbox as the
// daemon's service account with its exchange on the node's link to the host, and a canary
// that answers whoever reaches it (the init container waits until its pod cannot).
type nodeRig struct {
	node   *kubetest.Node
	admin  kubernetes.Interface
	sb     *Sandbox
	agent  string
	canary string
	// probe accepts connections on the host link on a port no policy allows: what a confined
	// agent must not reach.
	probe string
}

func newNodeRig(t testing.TB, tune ...func(*Options)) *nodeRig {
	t.Helper()
	admin, daemon := liveCluster(t)
	node := kubetest.Start(t).Node(t)
	r := &nodeRig{node: node, admin: admin, agent: dockertest.TestAgentImage(t)}
	runnerImage := kubetest.RunnerImage(t)
	node.Import(t, runnerImage, r.agent)
	x := &Exchange{}
	ln, err := net.Listen("tcp", net.JoinHostPort(node.HostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: x}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	r.canary, r.probe = node.AcceptAll(t), node.AcceptAll(t)
	opts := Options{Namespace: agentsNamespace, RunnerImage: runnerImage, Exchange: x,
		ExchangeURL: "http://" + ln.Addr().String(), PolicyCanary: r.canary,
		Owner:        sandbox.OwnerLabels(sandbox.DaemonOwner("node-test"), "store-1"),
		NodeSelector: map[string]string{kubetest.RealNodeLabel: "true"}, StopGrace: 2 * time.Second}
	for _, f := range tune {
		f(&opts)
	}
	if opts.RunnerInAgentImages {
		r.agent = kubetest.CarryingImage(t, r.agent)
		node.Import(t, r.agent)
	}
	r.sb, err = New(daemon, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// run prepares and runs one agent to its end and destroys what it made.
func (r *nodeRig) run(t *testing.T, spec *sandbox.Spec) (*sandbox.Result, string) {
	t.Helper()
	h, err := r.sb.Prepare(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := r.sb.Destroy(t.Context(), h); err != nil {
			t.Error(err)
		}
	}()
	var logs strings.Builder
	res, err := r.sb.Run(t.Context(), h, &logs)
	if err != nil {
		t.Fatalf("run: %v\nlogs: %s\n%s", err, logs.String(), r.node.Logs())
	}
	return res, logs.String()
}

func (r *nodeRig) spec(t testing.TB, job, network string, argv ...string) *sandbox.Spec {
	s := liveSpec(t, job, network)
	s.Image, s.PullPolicy, s.Argv = r.agent, sandbox.PullNever, append([]string{"/testagent"}, argv...)
	s.Secrets = map[string]string{"AGENT_SECRET": "s3cr3t-value-of-the-test"}
	s.Timeout = 2 * time.Minute
	return s
}

// escapeReport is what the test agent's escape step prints.
func escapeReport(t *testing.T, logs string) map[string]any {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if _, js, ok := strings.Cut(line, "ESCAPE "); ok {
			rep := map[string]any{}
			if err := json.Unmarshal([]byte(js), &rep); err != nil {
				t.Fatalf("escape report %q: %v", js, err)
			}
			return rep
		}
	}
	t.Fatalf("no escape report in the agent's log:\n%s", logs)
	return nil
}

// On a real node (kubelet, containerd, runc), an agent with network none runs confined as on
// Docker: no capabilities, no new privileges, a seccomp filter, a read-only root, uid 10001,
// and no network but the exchange — the NetworkPolicy is enforced (kube-router) before the
// agent starts (the init container waits on the canary). Its changes and outputs come back,
// its log is followed from the kubelet, its secret is masked there.
func TestOnARealNodeAnAgentRunsConfined(t *testing.T) {
	r := newNodeRig(t)
	spec := r.spec(t, "probe", sandbox.NetworkNone, "escape", "dial", r.probe, "dial", r.canary, "env",
		"write", "new.txt=from a real pod", "output", "verdict=confined")
	res, logs := r.run(t, spec)
	if res.Outcome != sandbox.Success {
		t.Fatalf("outcome %s (exit %d), want success\n%s", res.Outcome, res.ExitCode, logs)
	}
	rep := escapeReport(t, logs)
	for key, want := range map[string]any{
		"cap_eff": "0000000000000000", "no_new_privs": "1", "seccomp": "2", "uid": float64(10001), "gid": float64(10001),
		"write_root": false, "write_etc": false, "write_usr": false, "write_proc_sys": false, "setuid": false,
		"write_workspace": true, "write_out": true, "write_tmp": true, "net_ip": false, "docker_sock": false,
	} {
		if rep[key] != want {
			t.Errorf("in the pod %s = %v, want %v", key, rep[key], want)
		}
	}
	for _, addr := range []string{r.probe, r.canary} {
		if !strings.Contains(logs, "DIAL "+addr+" => error") {
			t.Errorf("the confined agent reached %s (a port no policy allows):\n%s", addr, logs)
		}
	}
	if strings.Contains(logs, "s3cr3t-value-of-the-test") {
		t.Error("the secret's value is in the followed log")
	}
	if !strings.Contains(logs, "AGENT_SECRET=") {
		t.Errorf("the agent did not get its secret (env step):\n%s", logs)
	}
	if got, _ := os.ReadFile(filepath.Join(spec.WorkspaceDir, "new.txt")); string(got) != "from a real pod" {
		t.Errorf("the daemon's workspace has new.txt %q", got)
	}
	got, _ := os.ReadFile(filepath.Join(spec.OutputDir, "outputs.json"))
	var outputs map[string]string
	if err := json.Unmarshal(got, &outputs); err != nil || outputs["verdict"] != "confined" {
		t.Errorf("the daemon's output directory has outputs.json %q (%v)", got, err)
	}
}

// An open agent gets no policy: it reaches what the confined one could not. Its exit code and
// an out-of-memory kill come back as on Docker.
func TestOnARealNodeOutcomesAreTheAgents(t *testing.T) {
	r := newNodeRig(t)
	res, logs := r.run(t, r.spec(t, "open", sandbox.NetworkOpen, "dial", r.probe, "exit", "3"))
	if res.Outcome != sandbox.Failed || res.ExitCode != 3 {
		t.Errorf("outcome %s exit %d, want failure 3\n%s", res.Outcome, res.ExitCode, logs)
	}
	if !strings.Contains(logs, "DIAL "+r.probe+" => ok") {
		t.Errorf("an open agent could not reach the host:\n%s", logs)
	}
	oom := r.spec(t, "oom", sandbox.NetworkNone, "alloc", "512m")
	oom.Resources.Memory = 64 << 20
	if res, logs := r.run(t, oom); res.Outcome != sandbox.OOM {
		t.Errorf("outcome %s exit %d, want %s\n%s", res.Outcome, res.ExitCode, sandbox.OOM, logs)
	}
}

// On a real node, an allow-listed agent reaches out only through its run's egress proxy pod:
// an allowed host answers through it, one off the list is refused and recorded, the model
// API's key endpoint adds the real key outside the agent (which holds a placeholder), and a
// direct connection to the allowed host, bypassing the proxy, is cut off by the agent's
// NetworkPolicy. The proxy's pod goes when the run's egress closes.
func TestOnARealNodeAnAllowListedAgentGoesOutOnlyThroughItsProxy(t *testing.T) {
	var daemonLog syncbuf.Buffer
	r := newNodeRig(t, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&daemonLog, nil)) })
	const key = "sk-ant-the-runs-real-key"
	var seen sync.Map // path → the key header it came with
	upstream := func() string {
		ln, err := net.Listen("tcp", net.JoinHostPort(r.node.HostIP, "0"))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			seen.Store(req.URL.Path, req.Header.Get("x-api-key"))
			fmt.Fprintf(w, "upstream saw %s\n", req.URL.Path)
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		return ln.Addr().String()
	}
	allowed, offList := upstream(), upstream()
	api := preset.API{Provider: "anthropic", Upstream: "http://" + allowed, KeyHeader: "x-api-key",
		BaseURLEnv: []string{"ANTHROPIC_BASE_URL"}, KeyEnv: []string{"ANTHROPIC_API_KEY"}}
	const runID = "allow-run"
	eg, err := r.sb.StartProxy(t.Context(), egress.RunSpec{RunID: runID, Keys: []egress.Key{{API: api, Value: key}},
		TestAllowPrefixes: []string{r.node.HostIP + "/32"}})
	if err != nil {
		t.Fatalf("start the proxy pod: %v\n%s", err, r.node.Logs())
	}
	defer func() {
		if err := eg.Close(context.Background()); err != nil {
			t.Error(err)
		}
		pods, _ := r.admin.CoreV1().Pods(agentsNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: LabelRole + "=" + RoleProxy})
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				t.Errorf("proxy pod %s left after the run's egress closed", p.Name)
			}
		}
	}()
	spec := r.spec(t, "allowed", sandbox.NetworkAllow,
		"fetch", "http://"+allowed+"/through-the-proxy",
		"fetch", "http://"+offList+"/off-the-list",
		"fetch", "$ANTHROPIC_BASE_URL/v1/messages",
		"dial", allowed, "dial", r.probe)
	spec.RunID = runID
	spec.Network.Allow = []string{allowed}
	cfg, err := eg.AgentConfig(t.Context(), egress.Agent{JobID: spec.JobID, Allow: spec.Network.Allow, APIs: []preset.API{api}})
	if err != nil {
		t.Fatal(err)
	}
	spec.Network.Proxy, spec.Network.ProxyEnv = eg.ProxyIP(), cfg.Env
	res, logs := r.run(t, spec)
	if res.Outcome != sandbox.Success {
		t.Fatalf("outcome %s (exit %d)\n%s", res.Outcome, res.ExitCode, logs)
	}
	for _, want := range []string{
		"FETCH http://" + allowed + "/through-the-proxy => 200 upstream saw /through-the-proxy",
		"FETCH $ANTHROPIC_BASE_URL/v1/messages => 200 upstream saw /v1/messages",
		"DIAL " + allowed + " => error",
		"DIAL " + r.probe + " => error",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the agent's log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "FETCH http://"+offList+"/off-the-list => 200") {
		t.Errorf("a host off the allow list answered:\n%s", logs)
	}
	if got, _ := seen.Load("/v1/messages"); got != key {
		t.Errorf("the model API got key %q, want the run's real one", got)
	}
	if _, ok := seen.Load("/off-the-list"); ok {
		t.Error("the host off the list was reached")
	}
	blocked, err := eg.Blocked(t.Context(), spec.JobID)
	if err != nil || len(blocked) == 0 || !strings.Contains(strings.Join(blocked, " "), offList) {
		t.Errorf("blocked = %v, %v; want %s among them", blocked, err, offList)
	}
	if !strings.Contains(daemonLog.String(), `msg="proxy: proxy ready"`) {
		t.Errorf("the proxy's log did not reach the daemon's:\n%s", daemonLog.String())
	}
	if strings.Contains(daemonLog.String(), key) {
		t.Error("the daemon's log holds the model key")
	}
}

// An agent image that carries the runner runs in a one-container pod on a real node: its own
// runner fills the workspace, waits for the policy (the canary is cut off before the agent
// starts), runs the agent confined as ever and hands its changes back.
func TestOnARealNodeAnImageThatCarriesTheRunnerRunsAlone(t *testing.T) {
	r := newNodeRig(t, func(o *Options) { o.RunnerInAgentImages = true })
	spec := r.spec(t, "carried", sandbox.NetworkNone, "escape", "dial", r.canary, "write", "alone.txt=one container")
	res, logs := r.run(t, spec)
	if res.Outcome != sandbox.Success {
		t.Fatalf("outcome %s (exit %d), want success\n%s", res.Outcome, res.ExitCode, logs)
	}
	rep := escapeReport(t, logs)
	if rep["cap_eff"] != "0000000000000000" || rep["uid"] != float64(10001) || rep["write_root"] != false {
		t.Errorf("not confined: %v", rep)
	}
	if !strings.Contains(logs, "DIAL "+r.canary+" => error") {
		t.Errorf("the agent reached the canary: it started before its policy was in force\n%s", logs)
	}
	if got, _ := os.ReadFile(filepath.Join(spec.WorkspaceDir, "alone.txt")); string(got) != "one container" {
		t.Errorf("the daemon's workspace has alone.txt %q", got)
	}
}
