package kube

import (
	"context"
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentrunner/agentrunner/sandbox"
)

// Sweep deletes the pods, then the Secrets and NetworkPolicies, of the namespace that carry
// the run label and for which remove returns true — the same ownership rule as the Docker
// reaper (sandbox.Leftover: its run, owner and store), so a daemon starting up removes its own
// leftovers and those of owners provably gone, never another live daemon's agents. It returns
// what it deleted ("pod <name>", …) and every failure joined.
func (s *Sandbox) Sweep(ctx context.Context, remove func(sandbox.Leftover) bool) ([]string, error) {
	ns := s.opts.Namespace
	list := metav1.ListOptions{LabelSelector: LabelRun}
	bg := metav1.DeletePropagationBackground
	del := metav1.DeleteOptions{PropagationPolicy: &bg}
	var removed []string
	var errs []error
	sweep := func(kind string, metas []metav1.ObjectMeta, delete func(name string) error) {
		for _, m := range metas {
			l := sandbox.Leftover{Kind: kind, Name: m.Name, RunID: m.Labels[LabelRun], Owner: m.Annotations[AnnotationOwner], Store: m.Annotations[AnnotationStore]}
			if !remove(l) {
				continue
			}
			if err := delete(m.Name); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, kind+" "+m.Name)
		}
	}
	pods, err := s.cli.CoreV1().Pods(ns).List(ctx, list)
	if err != nil {
		return nil, err
	}
	var metas []metav1.ObjectMeta
	for _, p := range pods.Items {
		metas = append(metas, p.ObjectMeta)
	}
	sweep("pod", metas, func(name string) error { return s.cli.CoreV1().Pods(ns).Delete(ctx, name, del) })
	secrets, err := s.cli.CoreV1().Secrets(ns).List(ctx, list)
	if err != nil {
		return removed, errors.Join(append(errs, err)...)
	}
	metas = metas[:0]
	for _, x := range secrets.Items {
		metas = append(metas, x.ObjectMeta)
	}
	sweep("secret", metas, func(name string) error { return s.cli.CoreV1().Secrets(ns).Delete(ctx, name, del) })
	policies, err := s.cli.NetworkingV1().NetworkPolicies(ns).List(ctx, list)
	if err != nil {
		return removed, errors.Join(append(errs, err)...)
	}
	metas = metas[:0]
	for _, x := range policies.Items {
		metas = append(metas, x.ObjectMeta)
	}
	sweep("networkpolicy", metas, func(name string) error { return s.cli.NetworkingV1().NetworkPolicies(ns).Delete(ctx, name, del) })
	return removed, errors.Join(errs...)
}
