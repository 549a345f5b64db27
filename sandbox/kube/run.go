package kube

// Following one agent's pod from its start to its end: the watch state machine (stateOf
// reads each status), the log follower, lost pods started again, and the outcome.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/agentrunner/agentrunner/sandbox"
)

// Run lets the pod fetch its workspace once it is ready, follows the agent's log and the pod's
// status until the agent ends, takes the changes the pod handed back, and deletes the pod.
func (s *Sandbox) Run(ctx context.Context, h *sandbox.Handle, logs io.Writer) (*sandbox.Result, error) {
	pj := s.podJob(h)
	if pj == nil {
		return nil, errors.New("kubernetes sandbox: Run on a handle Prepare did not return, or after Destroy")
	}
	spec := pj.job.spec
	infra := func(op string, err error) error {
		return &sandbox.InfraError{Op: op, Object: fmt.Sprintf("for job %q", spec.JobID), Err: err}
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = s.deleteAll(dctx, h.Name)
	}()
	if spec.WorkspaceReady != nil {
		if err := spec.WorkspaceReady(ctx); err != nil {
			pj.x.markReady(err)
			return nil, infra("make the workspace", err)
		}
	}
	pj.x.markReady(nil)
	mask := sandbox.NewMaskingWriter(logs, secretValues(spec.Secrets))
	defer mask.Flush()

	runCtx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	var st state
	var f *follower
	for attempt := 1; ; attempt++ {
		f = &follower{cli: s.cli, ns: s.opts.Namespace, name: h.Name, w: mask}
		var err error
		st, err = s.watch(runCtx, h.Name, f)
		if err != nil || !st.retry || attempt > s.opts.InfraRetries {
			st.err = err
			break
		}
		f.stop()
		fmt.Fprintf(mask, "agentrunner: %s; the agent starts again in a new pod (attempt %d of %d)\n", st.infra, attempt+1, s.opts.InfraRetries+1)
		s.log.Warn("pod lost, starting it again", "pod", h.Name, "why", st.infra, "attempt", attempt+1)
		if err := s.again(runCtx, pj); err != nil {
			st = state{err: err}
			break
		}
	}
	err := st.err
	switch {
	case err != nil && ctx.Err() == nil && runCtx.Err() != nil:
		st = state{done: true, outcome: sandbox.TimedOut}
	case err != nil && ctx.Err() != nil:
		st = state{done: true, outcome: sandbox.Cancelled}
	case err != nil:
		f.stop()
		return nil, infra("follow pod", err)
	}
	if st.outcome == sandbox.TimedOut || st.outcome == sandbox.Cancelled {
		// Stop the agent within its grace period; what it wrote is not taken.
		grace := int64(s.opts.StopGrace.Seconds())
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		_ = s.cli.CoreV1().Pods(s.opts.Namespace).Delete(dctx, h.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
		dcancel()
	}
	f.finish(s.opts.StopGrace)
	if st.outcome == sandbox.Failed && st.exitCode == 125 && !pj.attached && !pj.x.fetched.Load() {
		// The agent's side refused to start the agent (its log says why) on a workspace that
		// never reached the pod: the infrastructure's failure, not the agent's, which never ran.
		st.infra = "the workspace never reached the pod, so the agent did not start (the job's log says why)"
	}
	if st.infra != "" {
		return nil, infra("run pod", errors.New(st.infra))
	}
	if st.outcome == sandbox.Success || st.outcome == sandbox.Failed {
		wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.HandBackWait)
		err := pj.x.waitHanded(wctx)
		wcancel()
		if err != nil {
			return nil, infra("take the pod's changes", err)
		}
	}
	now := time.Now()
	if st.finished.IsZero() {
		st.finished = now
	}
	if st.started.IsZero() {
		st.started = st.finished
	}
	r := &sandbox.Result{Outcome: st.outcome, ExitCode: st.exitCode, Started: st.started, Finished: st.finished,
		Duration: st.finished.Sub(st.started)}
	if st.diskFull {
		r.DiskLimit = pj.job.res.Disk
	}
	if r.Outcome == sandbox.TimedOut || r.Outcome == sandbox.Cancelled {
		r.ExitCode = -1
	}
	return r, nil
}

func secretValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// watch follows the pod's status until its agent is done, starting f once the agent runs.
// The watch is opened again when the API server closes it; a pod that disappears is an
// infrastructure failure.
func (s *Sandbox) watch(ctx context.Context, name string, f *follower) (state, error) {
	pods := s.cli.CoreV1().Pods(s.opts.Namespace)
	for {
		var pod *corev1.Pod
		err := whenFree(ctx, func() (err error) {
			pod, err = pods.Get(ctx, name, metav1.GetOptions{})
			return err
		})
		if apierrors.IsNotFound(err) {
			return state{done: true, infra: "the pod was deleted before its agent ended", retry: true}, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return state{}, ctx.Err()
			}
			return state{}, err
		}
		if st := s.observe(pod, f); st.done {
			return st, nil
		}
		w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name, ResourceVersion: pod.ResourceVersion})
		if err != nil {
			if ctx.Err() != nil {
				return state{}, ctx.Err()
			}
			time.Sleep(time.Second)
			continue
		}
		st, err := s.drain(ctx, w.ResultChan(), name, f)
		w.Stop()
		if err != nil || st.done {
			return st, err
		}
	}
}

func (s *Sandbox) drain(ctx context.Context, events <-chan watch.Event, name string, f *follower) (state, error) {
	for {
		select {
		case <-ctx.Done():
			return state{}, ctx.Err()
		case ev, ok := <-events:
			if !ok {
				return state{}, nil // closed by the server: open another
			}
			pod, isPod := ev.Object.(*corev1.Pod)
			if !isPod || pod.Name != name {
				continue
			}
			if ev.Type == watch.Deleted {
				if st := stateOf(pod); st.done {
					return st, nil
				}
				return state{done: true, infra: "the pod was deleted before its agent ended", retry: true}, nil
			}
			if st := s.observe(pod, f); st.done {
				return st, nil
			}
		}
	}
}

func (s *Sandbox) observe(pod *corev1.Pod, f *follower) state {
	st := stateOf(pod)
	if st.running {
		f.start()
	}
	return st
}
