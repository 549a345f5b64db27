package kubetest

import (
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// The harness itself: a pod that tolerates the fake node is scheduled onto it by the real
// scheduler, and kwok starts it; deleting it deletes it.
func TestKwokSchedulesAndRunsAPod(t *testing.T) {
	c := Start(t)
	c.Kwok(t)
	cli, err := kubernetes.NewForConfig(c.Admin())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.CoreV1().ServiceAccounts("default").Get(t.Context(), "default", metav1.GetOptions{}); err != nil {
		if err := waitDefaultAccount(t.Context(), cli, "default"); err != nil {
			t.Fatal(err)
		}
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{
		Containers:   []corev1.Container{{Name: "c", Image: "x"}},
		NodeSelector: map[string]string{"type": "kwok"}, Tolerations: []corev1.Toleration{FakeNodeToleration}}}
	if _, err := cli.CoreV1().Pods("default").Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		p, err := cli.CoreV1().Pods("default").Get(t.Context(), "p", metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning && p.Spec.NodeName == "kwok-node-0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pod did not run on kwok's node within a minute: %+v\n%s", p.Status, c.tail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := cli.CoreV1().Pods("default").Delete(t.Context(), "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		if _, err := cli.CoreV1().Pods("default").Get(t.Context(), "p", metav1.GetOptions{}); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted pod is still there\n%s", c.tail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
