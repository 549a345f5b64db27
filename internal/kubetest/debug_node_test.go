package kubetest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/agentrunner/agentrunner/internal/dockertest"
)

func TestDebugNode(t *testing.T) {
	c := Start(t)
	n := c.Node(t)
	img := dockertest.TestAgentImage(t)
	n.Import(t, img)
	cli, _ := kubernetes.NewForConfig(c.Admin())
	waitDefaultAccount(t.Context(), cli, "default")
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, AutomountServiceAccountToken: new(bool),
		Containers: []corev1.Container{{Name: "c", Image: img, ImagePullPolicy: corev1.PullNever, Command: []string{"/testagent", "print", "hello", "dial", n.HostIP + ":22", "sleep", "3s", "print", "bye"}}}}}
	start := time.Now()
	if _, err := cli.CoreV1().Pods("default").Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 25; i++ {
		p, _ := cli.CoreV1().Pods("default").Get(t.Context(), "p", metav1.GetOptions{})
		if len(p.Status.ContainerStatuses) > 0 {
			t.Logf("%s phase %s %+v", time.Since(start), p.Status.Phase, p.Status.ContainerStatuses[0].State)
		}
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			break
		}
		time.Sleep(time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := cli.CoreV1().Pods("default").GetLogs("p", &corev1.PodLogOptions{}).DoRaw(ctx)
	t.Logf("logs %q err %v", b, err)
	zero := int64(0)
	cli.CoreV1().Pods("default").Delete(t.Context(), "p", metav1.DeleteOptions{GracePeriodSeconds: &zero})
	time.Sleep(3 * time.Second)
	for _, f := range []string{"kubelet.log", "containerd.log"} {
		b, _ := os.ReadFile(filepath.Join(n.dir, f))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "E1206") || strings.Contains(l, "level=error") || strings.Contains(l, "level=warn") {
				t.Log(l)
			}
		}
	}
}
