package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/sandbox/kube"
)

// kubeConfig is runner.yaml's `kubernetes:` block, for `sandbox: kubernetes`.
type kubeConfig struct {
	// Kubeconfig is a kubeconfig file; empty: the service account of the pod the daemon runs in.
	Kubeconfig string `yaml:"kubeconfig"`
	// Namespace holds the agents' pods (it should enforce Pod Security "restricted").
	Namespace string `yaml:"namespace"`
	// RunnerImage is an image with the static runner at /runner (`make runner-image`),
	// present on the nodes or pullable by them.
	RunnerImage string `yaml:"runner-image"`
	// ExchangeListen is where the daemon serves the pods their workspaces and takes their
	// changes back; ExchangeURL is how pods reach that address.
	ExchangeListen string `yaml:"exchange-listen"`
	ExchangeURL    string `yaml:"exchange-url"`
	// PolicyCanary is an address (host:port) pods reach unless their NetworkPolicy is in force;
	// an agent starts once its pod cannot (default: the API server's Service).
	PolicyCanary string `yaml:"policy-canary"`
	// RunnerInAgentImages: the agents' images carry the runner at /.agentrunner/runner, so
	// each agent's pod is one container that fills its workspace itself and starts faster.
	RunnerInAgentImages bool `yaml:"runner-in-agent-images"`
	// NodeSelector and Tolerations place the agents' pods, e.g. on nodes set aside for them.
	NodeSelector map[string]string `yaml:"node-selector"`
	Tolerations  []toleration      `yaml:"tolerations"`
}

// toleration is a pod's toleration as Kubernetes spells it in YAML.
type toleration struct {
	Key      string `yaml:"key"`
	Operator string `yaml:"operator"`
	Value    string `yaml:"value"`
	Effect   string `yaml:"effect"`
}

func (k kubeConfig) tolerations() []corev1.Toleration {
	var out []corev1.Toleration
	for _, t := range k.Tolerations {
		out = append(out, corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOperator(t.Operator), Value: t.Value, Effect: corev1.TaintEffect(t.Effect)})
	}
	return out
}

func (k kubeConfig) check() error {
	var missing []string
	for _, f := range []struct{ key, v string }{
		{"namespace", k.Namespace}, {"runner-image", k.RunnerImage}, {"exchange-listen", k.ExchangeListen}, {"exchange-url", k.ExchangeURL},
	} {
		if f.v == "" {
			missing = append(missing, "kubernetes."+f.key)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("sandbox kubernetes needs %v in runner.yaml (see the README, \"Running on Kubernetes\")", missing)
	}
	return nil
}

// start connects to the cluster, serves the exchange and returns the sandbox; stop ends the
// exchange's server.
func (k kubeConfig) start(ctx context.Context, owner map[string]string, disk int64, logger *slog.Logger) (*kube.Sandbox, func(), error) {
	cli, _, err := kube.Connect(k.Kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	if _, err := cli.CoreV1().Pods(k.Namespace).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		return nil, nil, fmt.Errorf("runner serve runs agents in namespace %s: list its pods: %w (is the daemon's RBAC applied?)", k.Namespace, err)
	}
	x := &kube.Exchange{}
	ln, err := net.Listen("tcp", k.ExchangeListen)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes.exchange-listen: %w", err)
	}
	// Agents reach the exchange: idle connections they leave open are closed after a while.
	srv := &http.Server{Handler: x, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("workspace exchange", "err", err)
		}
	}()
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	sb, err := kube.New(cli, kube.Options{Namespace: k.Namespace, Owner: owner, RunnerImage: k.RunnerImage, Exchange: x,
		ExchangeURL: k.ExchangeURL, Resources: sandbox.Resources{Disk: disk}, Logger: logger,
		NodeSelector: k.NodeSelector, Tolerations: k.tolerations(), PolicyCanary: k.PolicyCanary, RunnerInAgentImages: k.RunnerInAgentImages})
	if err != nil {
		stop()
		return nil, nil, err
	}
	logger.Info("agents run as pods", "namespace", k.Namespace, "exchange", ln.Addr().String(), "exchange_url", k.ExchangeURL)
	return sb, stop, nil
}
