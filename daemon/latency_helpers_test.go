package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/store"
)

// stamps records when each stage of a run was first reached, keyed by run (or delivery) id,
// so the latency benchmark can say where the daemon's time goes. The wrappers below only read
// the clock: they add nothing measurable to the path they time.
type stamps struct {
	mu      sync.Mutex
	at      map[string]map[string]time.Time
	changed chan struct{} // closed and replaced on every new stamp
}

func newStamps() *stamps {
	return &stamps{at: map[string]map[string]time.Time{}, changed: make(chan struct{})}
}

// mark records stage of key at t unless it was already reached (a retry or a second planning
// of the same run must not move the first time).
func (s *stamps) mark(key, stage string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.at[key]
	if m == nil {
		m = map[string]time.Time{}
		s.at[key] = m
	}
	if _, ok := m[stage]; ok {
		return
	}
	m[stage] = t
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *stamps) get(key, stage string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[key][stage]
	return t, ok
}

// wait returns when key reached stage, or fails after timeout.
func (s *stamps) wait(key, stage string, timeout time.Duration) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		t, ok := s.at[key][stage]
		changed := s.changed
		s.mu.Unlock()
		if ok {
			return t, nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("%s did not reach %q within %s", key, stage, timeout)
		}
	}
}

// Stages the wrappers and the Docker event watcher stamp.
const (
	stIntakeLeased = "intake-leased"  // an intake worker took the delivery
	stPlanned      = "planned"        // the intake's first Plan returned
	stRunCreated   = "run-created"    // the run and its job are in the store
	stRunLeased    = "run-leased"     // a run worker took the run job
	stRunRunning   = "run-running"    // the run was replanned and marked running
	stSandbox      = "sandbox"        // the engine handed the job to the sandbox (workspace ready)
	stCreated      = "docker-create"  // Docker's create event arrived
	stStarted      = "docker-start"   // Docker's start event arrived: the container runs
	stStartReturn  = "start-returned" // ContainerStart returned (bare baseline only)
)

// timedStore stamps the queue's stages of each run.
type timedStore struct {
	store.Store
	st *stamps
}

func (s timedStore) Lease(ctx context.Context, owner string, kinds []string, n int, ttl time.Duration) ([]store.Job, error) {
	jobs, err := s.Store.Lease(ctx, owner, kinds, n, ttl)
	now := time.Now()
	for _, j := range jobs {
		if j.Kind == store.KindIntake {
			s.st.mark(j.DeliveryID, stIntakeLeased, now)
		} else {
			s.st.mark(j.RunID, stRunLeased, now)
		}
	}
	return jobs, err
}

func (s timedStore) CreateRun(ctx context.Context, r store.Run) (store.Run, bool, error) {
	run, created, err := s.Store.CreateRun(ctx, r)
	if err == nil {
		s.st.mark(run.ID, stRunCreated, time.Now())
	}
	return run, created, err
}

func (s timedStore) UpdateRun(ctx context.Context, r store.Run) error {
	err := s.Store.UpdateRun(ctx, r)
	if err == nil && r.Status == store.RunRunning {
		s.st.mark(r.ID, stRunRunning, time.Now())
	}
	return err
}

// timedPipeline stamps the end of a delivery's first planning (the intake's).
type timedPipeline struct {
	*daemon.GitPipeline
	st *stamps
}

func (p timedPipeline) Plan(ctx context.Context, ev *event.Event, routine string) (*plan.Plan, error) {
	pl, err := p.GitPipeline.Plan(ctx, ev, routine)
	p.st.mark(ev.DeliveryID, stPlanned, time.Now())
	return pl, err
}

// timedSandbox stamps the moment the engine hands a job to the sandbox: its workspace exists.
// Embedding keeps the wrapped sandbox's BeginRun/EndRun (the egress proxy) visible.
type timedSandbox struct {
	*runner.Containers
	st *stamps
}

func (s timedSandbox) Run(ctx context.Context, t *runner.Task, logs io.Writer) (*runner.Exit, error) {
	s.st.mark(t.RunID, stSandbox, time.Now())
	return s.Containers.Run(ctx, t, logs)
}

// watchContainers stamps create and start events of every container labelled agentrunner.run,
// under its run label and under run label + "/" + job label, at the moment each event arrives.
// The event stream connects in the background, so it returns only once the stream reported
// the start of a probe container (probe n starts one and returns its key and its removal).
func watchContainers(ctx context.Context, tb testing.TB, cli client.APIClient, st *stamps,
	probe func(ctx context.Context, n int) (key string, cleanup func(), err error)) {
	tb.Helper()
	f := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("event", string(events.ActionCreate)),
		filters.Arg("event", string(events.ActionStart)),
		filters.Arg("label", sandbox.LabelRun),
	)
	msgs, errs := cli.Events(ctx, events.ListOptions{Filters: f})
	go func() {
		for {
			select {
			case m := <-msgs:
				now := time.Now()
				stage := stCreated
				if m.Action == events.ActionStart {
					stage = stStarted
				}
				run := m.Actor.Attributes[sandbox.LabelRun]
				st.mark(run, stage, now)
				st.mark(run+"/"+m.Actor.Attributes[sandbox.LabelJob], stage, now)
			case err := <-errs:
				if ctx.Err() == nil {
					tb.Errorf("Docker event stream ended: %v", err)
				}
				return
			}
		}
	}()
	for n := range 10 {
		key, cleanup, err := probe(ctx, n)
		if err == nil {
			_, err = st.wait(key, stStarted, 3*time.Second)
		}
		cleanup()
		if err == nil {
			return
		}
	}
	tb.Fatalf("the Docker event stream reports no container start after 10 probe containers")
}

// bareStart is the baseline: ContainerCreate and ContainerStart through the Docker API of
// exactly the container the sandbox would create, nothing else.
func bareStart(ctx context.Context, sb *sandbox.Docker, image, runID, jobID, ws, out string, argv []string, st *stamps) (string, error) {
	cli := sb.Client()
	cfg, hc, nc := sb.ContainerConfig(&sandbox.Spec{
		RunID: runID, JobID: jobID, Image: image, Argv: argv, WorkspaceDir: ws, OutputDir: out,
		Network: sandbox.Network{Mode: sandbox.NetworkNone},
	})
	c, err := cli.ContainerCreate(ctx, cfg, hc, nc, nil, "")
	if err != nil {
		return "", fmt.Errorf("create the baseline container %s: %w", jobID, err)
	}
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return c.ID, fmt.Errorf("start the baseline container %s: %w", jobID, err)
	}
	st.mark(runID+"/"+jobID, stStartReturn, time.Now())
	return c.ID, nil
}

func removeContainer(cli client.APIClient, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}

// percentile is the nearest-rank percentile p (0 < p ≤ 100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// sendPush posts one signed push delivery to url and returns the status.
func sendPush(url, id string, secret, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set(github.SignatureHeader, github.Sign(secret, body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
