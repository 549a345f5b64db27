package kube

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/agentrunner/agentrunner/sandbox/kube/carry"
)

// Exchange is the daemon's side of the pods' workspaces: a pod has no disk in common with
// the daemon, so its first container fetches the job's workspace (and output directory) from
// here, and its agent container hands the trees back here when the agent ends, each with the
// job's own token; a run's egress proxy dials it for its control channel (control.go). The
// daemon then finds the job's changes in its workspace as with Docker, and takes them from
// there under the same rules (the patch, the size caps, the trust rules are the engine's,
// unchanged). Nothing here holds a forge credential. The routes are carry's.
type Exchange struct {
	mu       sync.Mutex
	jobs     map[[32]byte]*exchangeJob    // by the SHA-256 of their token
	controls map[[32]byte]*controlSession // egress proxies' control channels, likewise
}

type exchangeJob struct {
	workspace, output string
	limits            carry.Limits
	// ready is closed once the workspace is filled (readyErr says if it could not be).
	ready    chan struct{}
	readyErr error
	// fetched: the pod took the whole workspace. What the exchange saw, not what the pod
	// says, tells a workspace that never arrived from an agent that failed.
	fetched atomic.Bool
	// handed is closed once the pod handed its trees back (handErr says if that failed).
	handed  chan struct{}
	handErr error
	once    sync.Once
}

// NewToken makes a job's token: 32 random bytes, hex.
func NewToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// register serves workspace and output to the pod holding token until unregister.
func (x *Exchange) register(token, workspace, output string, lim carry.Limits) *exchangeJob {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.jobs == nil {
		x.jobs = map[[32]byte]*exchangeJob{}
	}
	j := &exchangeJob{workspace: workspace, output: output, limits: lim, ready: make(chan struct{}), handed: make(chan struct{})}
	x.jobs[sha256.Sum256([]byte(token))] = j
	return j
}

func (x *Exchange) unregister(token string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.jobs, sha256.Sum256([]byte(token)))
}

func (x *Exchange) job(r *http.Request) *exchangeJob {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || got == "" {
		return nil
	}
	// By the token's hash: a lookup that takes as long whatever a guess shares with a token.
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.jobs[sha256.Sum256([]byte(got))]
}

// ServeHTTP serves the routes above.
func (x *Exchange) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == carry.ControlRoute {
		x.serveControl(w, r)
		return
	}
	j := x.job(r)
	if j == nil {
		http.Error(w, "unknown or missing job token", http.StatusUnauthorized)
		return
	}
	switch {
	case r.URL.Path == carry.WorkspaceRoute && r.Method == http.MethodGet:
		select {
		case <-j.ready:
		case <-r.Context().Done():
			return
		}
		if j.readyErr != nil {
			http.Error(w, "the workspace could not be made: "+j.readyErr.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/x-tar")
		if err := carry.WriteTrees(w, map[string]string{"workspace": j.workspace, "out": j.output}, j.limits); err != nil {
			// The status is sent; a cut stream fails the pod's tar reader.
			panic(http.ErrAbortHandler)
		}
		j.fetched.Store(true)
	case r.URL.Path == carry.ChangesRoute && r.Method == http.MethodPut:
		err := errors.New("the changes were handed back already")
		j.once.Do(func() {
			err = j.receive(r.Body)
			j.handErr = err
			close(j.handed)
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "no such route", http.StatusNotFound)
	}
}

// receive replaces the job's workspace and output directory with the trees the pod sent:
// extracted beside them first, so that a refused stream leaves them as they were.
func (j *exchangeJob) receive(body io.Reader) error {
	stage := map[string]string{}
	for prefix, dir := range map[string]string{"workspace": j.workspace, "out": j.output} {
		tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".kube-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		stage[prefix] = tmp
	}
	if err := carry.ReadTrees(body, stage, j.limits); err != nil {
		return fmt.Errorf("the pod's changes: %w", err)
	}
	for prefix, dir := range map[string]string{"workspace": j.workspace, "out": j.output} {
		if err := replaceContents(dir, stage[prefix]); err != nil {
			return err
		}
	}
	return nil
}

// replaceContents empties dir and moves src's entries into it (one filesystem: renames).
func replaceContents(dir, src string) error {
	old, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range old {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// markReady lets the pod fetch the workspace (err: it cannot be made).
func (j *exchangeJob) markReady(err error) {
	select {
	case <-j.ready:
	default:
		j.readyErr = err
		close(j.ready)
	}
}

// waitHanded waits until the pod handed its trees back, or ctx ends.
func (j *exchangeJob) waitHanded(ctx context.Context) error {
	select {
	case <-j.handed:
		return j.handErr
	case <-ctx.Done():
		return errors.New("the pod did not hand its workspace back")
	}
}
