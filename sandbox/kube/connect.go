package kube

import (
	"fmt"

	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	networkingv1client "k8s.io/client-go/kubernetes/typed/networking/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

type clients struct {
	core *corev1client.CoreV1Client
	net  *networkingv1client.NetworkingV1Client
}

func (c clients) CoreV1() corev1client.CoreV1Interface                   { return c.core }
func (c clients) NetworkingV1() networkingv1client.NetworkingV1Interface { return c.net }

// Connect makes a Client from a kubeconfig file, or from the pod's service account when
// kubeconfig is empty and the runner runs in the cluster.
func Connect(kubeconfig string) (Client, *rest.Config, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, nil, fmt.Errorf("kubernetes: no kubeconfig given and not in a cluster (%w); set kubernetes.kubeconfig in runner.yaml", err)
		}
	} else if cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
		return nil, nil, fmt.Errorf("kubernetes: read kubeconfig %s: %w", kubeconfig, err)
	}
	// Each agent costs the API about eight requests (its policy, Secret and pod, two owner
	// patches, the watch, the log, the deletes): client-go's default of 5 a second would hold
	// thousands of agents back for minutes. The API server's priority and fairness, not this
	// client, is what protects the cluster.
	cfg.QPS, cfg.Burst = 300, 600
	core, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	nw, err := networkingv1client.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	return clients{core: core, net: nw}, cfg, nil
}
