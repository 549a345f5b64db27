package reporters_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/internal/githubfake"
	"github.com/agentrunner/agentrunner/overview"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
)

// runFiles is an in-memory reporters.RunFiles.
type runFiles struct {
	mu    sync.Mutex
	files map[string][]byte // run id + "/" + name
	err   error
}

func (f *runFiles) SaveRunFile(_ context.Context, runID, name string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	if f.files == nil {
		f.files = map[string][]byte{}
	}
	f.files[runID+"/"+name] = append([]byte(nil), data...)
	return nil
}

func TestPullRequestRecordedInTheRunFiles(t *testing.T) {
	f := githubfake.New(t)
	rest := client(t, f)
	local, remote, base, patch := gitRepos(t)
	files := &runFiles{}
	pub := plan.Publish{PullRequest: &plan.PullRequest{Title: "Fixes", Key: "main"}}
	// The first run opens the pull request, the second updates it: each records it.
	for i := range 2 {
		id := fmt.Sprintf("run-%d", i)
		info := runInfo(id, pub, nil)
		res := finished(0, result.Success)
		res.SHA, res.Patch = base, patch
		res.Report = fmt.Sprintf("report %d", i)
		pr := reporters.NewPullRequest(rest, repo, reporters.PullRequestConfig{RepoDir: local, RemoteURL: "file://" + remote, Files: files})
		drive(t, pr, info, res)
		b, ok := files.files[id+"/"+reporters.PullRequestFile]
		if !ok {
			t.Fatalf("run %s: no %s among %v", id, reporters.PullRequestFile, files.files)
		}
		var rec map[string]any
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		prs := f.PullRequests()
		if len(prs) != 1 || rec["number"] != float64(prs[0].Number) || rec["repo"] != "o/r" || rec["html_url"] != pr.URL() ||
			!strings.HasSuffix(pr.URL(), fmt.Sprintf("/o/r/pull/%d", prs[0].Number)) || len(rec) != 3 {
			t.Errorf("run %s recorded %s, PRs %+v, URL %q", id, b, prs, pr.URL())
		}
		// The review reads the same file.
		var seen overview.PullRequest
		if err := json.Unmarshal(b, &seen); err != nil || seen.Number != prs[0].Number || seen.HTMLURL != pr.URL() || seen.Repo != "o/r" {
			t.Errorf("the review reads %+v (%v) from %s", seen, err, b)
		}
	}

	// A run that opens nothing records nothing.
	info := runInfo("run-failed", pub, nil)
	res := finished(0, result.Failed)
	res.SHA, res.Patch = base, patch
	drive(t, reporters.NewPullRequest(rest, repo, reporters.PullRequestConfig{RepoDir: local, RemoteURL: "file://" + remote, Files: files}), info, res)
	if _, ok := files.files["run-failed/"+reporters.PullRequestFile]; ok {
		t.Error("a failed run recorded a pull request")
	}

	// A record that cannot be saved is the reporter's error (logged by the engine), naming
	// the pull request.
	files.err = errors.New("database is locked")
	info = runInfo("run-2", pub, nil)
	res = finished(0, result.Success)
	res.SHA, res.Patch = base, patch
	err := reporters.NewPullRequest(rest, repo, reporters.PullRequestConfig{RepoDir: local, RemoteURL: "file://" + remote, Files: files}).
		Report(t.Context(), reporters.Update{Kind: reporters.RunFinished, Run: info, Result: res, Time: time.Now()})
	if err == nil || !strings.Contains(err.Error(), "record pull request #") || !strings.Contains(err.Error(), "database is locked") {
		t.Errorf("save failure: %v", err)
	}
}

// The check run is recorded with the run once made (or found again by a retried attempt), so
// the control room links it.
func TestCheckRunRecordedInTheRunFiles(t *testing.T) {
	f := githubfake.New(t)
	rest := client(t, f)
	files := &runFiles{}
	for range 2 { // the second attempt finds the check run the first made
		cr := reporters.NewCheckRun(rest, repo)
		cr.Files = files
		drive(t, cr, runInfo("run-1", plan.Publish{Check: true}, nil), finished(0, result.Success))
	}
	runs := f.CheckRuns()
	if len(runs) != 1 {
		t.Fatalf("%d check runs, want 1", len(runs))
	}
	var rec reporters.CheckRunRecord
	if err := json.Unmarshal(files.files["run-1/"+reporters.CheckRunFile], &rec); err != nil {
		t.Fatalf("%s: %v (files %v)", reporters.CheckRunFile, err, files.files)
	}
	if rec.ID != runs[0].ID || rec.Name != "agents/review" || rec.Repo != "o/r" || !strings.HasSuffix(rec.HTMLURL, fmt.Sprintf("/o/r/runs/%d", runs[0].ID)) {
		t.Errorf("recorded %+v for check run %d", rec, runs[0].ID)
	}
}
