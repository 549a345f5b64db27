package kubetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
)

// Apply creates, as the admin, every object of the YAML files matching pattern (kinds the
// runner's manifests use: Namespace, ServiceAccount, Role, RoleBinding), namespaces first;
// objects already there are kept. It waits for each namespace's default service account,
// which every pod needs.
func (c *Cluster) Apply(pattern string) error {
	cli, err := kubernetes.NewForConfig(c.Admin())
	if err != nil {
		return err
	}
	ctx := context.Background()
	files, _ := filepath.Glob(pattern)
	if len(files) == 0 {
		return fmt.Errorf("no manifests match %s", pattern)
	}
	var objs []runtime.Object
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		for _, doc := range bytes.Split(data, []byte("\n---\n")) {
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			objs = append(objs, obj)
		}
	}
	var namespaces []string
	for pass := 0; pass < 2; pass++ {
		for _, o := range objs {
			_, isNS := o.(*corev1.Namespace)
			if isNS != (pass == 0) {
				continue
			}
			var err error
			switch x := o.(type) {
			case *corev1.Namespace:
				_, err = cli.CoreV1().Namespaces().Create(ctx, x, metav1.CreateOptions{})
				namespaces = append(namespaces, x.Name)
			case *corev1.ServiceAccount:
				_, err = cli.CoreV1().ServiceAccounts(x.Namespace).Create(ctx, x, metav1.CreateOptions{})
			case *rbacv1.Role:
				_, err = cli.RbacV1().Roles(x.Namespace).Create(ctx, x, metav1.CreateOptions{})
			case *rbacv1.RoleBinding:
				_, err = cli.RbacV1().RoleBindings(x.Namespace).Create(ctx, x, metav1.CreateOptions{})
			default:
				err = fmt.Errorf("the manifests have a %s, which Apply does not know", o.GetObjectKind().GroupVersionKind().Kind)
			}
			if err != nil && !apierrors.IsAlreadyExists(err) {
				return err
			}
		}
	}
	for _, ns := range namespaces {
		if err := waitDefaultAccount(ctx, cli, ns); err != nil {
			return err
		}
	}
	return nil
}

func waitDefaultAccount(ctx context.Context, cli kubernetes.Interface, ns string) error {
	for i := 0; i < 300; i++ {
		if _, err := cli.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("namespace %s has no default service account after 30s (is the controller manager running?)", ns)
}
