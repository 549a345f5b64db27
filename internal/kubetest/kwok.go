package kubetest

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

//go:embed kwok-stages.yaml
var kwokStages []byte

// Fake nodes: kwok manages the nodes with this annotation; their taint keeps every pod that
// does not tolerate it (other tests') off them.
const (
	FakeNodeKey   = "kwok.x-k8s.io/node"
	FakeNodeValue = "fake"
)

// FakeNodeToleration lets a pod onto the fake nodes.
var FakeNodeToleration = corev1.Toleration{Key: FakeNodeKey, Operator: corev1.TolerationOpEqual, Value: FakeNodeValue, Effect: corev1.TaintEffectNoSchedule}

var kwokOnce sync.Once
var kwokErr error

// Kwok starts kwok (once per test binary) and one fake node, kwok-node-0, with room for
// thousands of pods: pods that tolerate it are scheduled there, and kwok runs them in name
// only (their containers "running" until the test ends them).
func (c *Cluster) Kwok(t testing.TB) {
	t.Helper()
	kwokOnce.Do(func() { kwokErr = c.startKwok() })
	if kwokErr != nil {
		t.Fatalf("start kwok: %v", kwokErr)
	}
}

func (c *Cluster) startKwok() error {
	kwok, err := binary("kwok")
	if err != nil {
		return err
	}
	stages := filepath.Join(c.dir, "kwok-stages.yaml")
	if err := os.WriteFile(stages, kwokStages, 0o600); err != nil {
		return err
	}
	if err := c.run("kwok", kwok, "--kubeconfig="+filepath.Join(c.dir, "kubeconfig"), "--config="+stages,
		"--manage-nodes-with-annotation-selector="+FakeNodeKey+"="+FakeNodeValue, "--cidr=10.244.0.0/16", "--node-ip=10.0.0.2",
		"--server-address="); err != nil {
		return err
	}
	cli, err := kubernetes.NewForConfig(c.Admin())
	if err != nil {
		return err
	}
	ctx := context.Background()
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "kwok-node-0", Annotations: map[string]string{FakeNodeKey: FakeNodeValue},
			Labels: map[string]string{"type": "kwok", "kubernetes.io/hostname": "kwok-node-0"}},
		Spec:   corev1.NodeSpec{Taints: []corev1.Taint{{Key: FakeNodeKey, Value: FakeNodeValue, Effect: corev1.TaintEffectNoSchedule}}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("10000")}},
	}
	if _, err := cli.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		n, err := cli.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
		if err == nil && nodeReady(n) {
			// Admission tainted the new node not-ready; the node lifecycle controller, which
			// would lift that once it is Ready, does not run here.
			n.Spec.Taints = node.Spec.Taints
			if _, err := cli.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err == nil {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("kwok did not make its node Ready within a minute\n%s", c.tail())
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
