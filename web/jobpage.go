package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/web/render"
)

// maxShownLog is how much of a stored log the job page shows: its end, where a failure is.
const maxShownLog = 1 << 20

// jobPageData is what the job page shows.
type jobPageData struct {
	RunID, JobID string
	Run          store.Run
	// Row is the job's outcome, duration and usage (status pending/running while the run goes on).
	Row      jobRow
	Agent    string
	Finished bool // the job is over: its run is completed
	Exit     string
	Turns    int
	Disk     string
	Outputs  []outputRow
	Findings []result.Finding
	Final    string
	Diff     diffView
	Log      string
	LogCut   int64 // bytes of the log left off before Log
	HasLog   bool
	// LiveURL is the live log's event stream while the job may still run, else "".
	LiveURL string
	BackURL string
	// CancelURL is where the "Cancel job" form posts.
	CancelURL string
}

type outputRow struct{ Name, Value string }

func (u *UI) jobPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	runID, jobID := r.PathValue("id"), r.PathValue("job")
	run, err := u.Store.GetRun(ctx, runID)
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "no such run", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "cannot read the run now; try again shortly", http.StatusServiceUnavailable)
		return
	}
	d := &jobPageData{RunID: runID, JobID: render.Visible(jobID), Run: run, Finished: run.Status == store.RunCompleted,
		BackURL: "/ui/runs/" + url.PathEscape(runID), CancelURL: jobHref(runID, jobID) + "/cancel"}
	found := false
	if d.Finished {
		found = u.finishedJob(r, d, jobID)
	}
	if !found {
		// A run not finished (or without a readable result) knows its jobs from its plan.
		var pl plan.Run
		if len(run.Plan) > 0 && json.Unmarshal(run.Plan, &pl) == nil {
			for _, n := range pl.Nodes {
				for _, in := range n.Instances {
					if in != nil && in.ID == jobID {
						found = true
						d.Agent = render.Visible(in.Agent)
						st := "pending"
						if u.jobsStarted(ctx, runID)(jobID) {
							st = "running"
						}
						if d.Finished {
							st = "unknown"
						}
						d.Row = jobRow{ID: d.JobID, Matrix: matrixText(in.Matrix), Replica: in.Replica, Status: st}
					}
				}
			}
		}
	}
	if !found {
		// A job of a workflow an orchestrator wrote is not in the plan; the store knows it
		// once it has started, whichever daemon runs it.
		if js, err := u.Store.RunJobs(ctx, runID); err == nil {
			for _, j := range js {
				if j.Job == jobID {
					found = true
					d.Agent = render.Visible(runner.JobAgent(jobID))
					st := j.State
					if d.Finished {
						st = "unknown"
					}
					d.Row = jobRow{ID: d.JobID, Status: st}
				}
			}
		}
	}
	if !found {
		http.Error(w, "run "+runID+" has no job "+strconv.Quote(render.Visible(jobID)), http.StatusNotFound)
		return
	}
	if !d.Finished {
		d.LiveURL = jobHref(runID, jobID) + "/log"
	}
	for _, dir := range jobDirs(jobID) {
		b, cut, err := u.runFileTail(ctx, runID, "jobs/"+dir+"/log.txt", maxShownLog)
		if err == nil {
			d.Log, d.LogCut, d.HasLog = render.Visible(string(b)), cut, true
			break
		}
	}
	se, _ := sessionFrom(ctx)
	u.render(w, http.StatusOK, "job", map[string]any{"Session": se.Session, "CSRF": se.csrfToken(), "Job": d,
		"CanControl": u.canSteer(r, run.Repo)})
}

// finishedJob fills d from the run's result; false when the result does not have the job.
func (u *UI) finishedJob(r *http.Request, d *jobPageData, jobID string) bool {
	b, err := u.runFile(r.Context(), d.RunID, resultFile, "")
	if err != nil {
		return false
	}
	var res result.Run
	if json.Unmarshal(b, &res) != nil {
		return false
	}
	j := res.Job(jobID)
	if j == nil {
		return false
	}
	d.Row = finishedJobRow(d.RunID, j)
	d.Agent = render.Visible(j.Agent)
	d.Exit = strconv.Itoa(j.ExitCode)
	d.Turns = j.Usage.Turns
	if j.DiskUsage > 0 {
		d.Disk = byteSize(j.DiskUsage)
	}
	d.Final = render.Visible(j.Final)
	for _, f := range j.Findings {
		f.Path, f.Level, f.Message, f.Title = render.Visible(f.Path), render.Visible(f.Level), render.Visible(f.Message), render.Visible(f.Title)
		d.Findings = append(d.Findings, f)
	}
	names := make([]string, 0, len(j.Outputs))
	for k := range j.Outputs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		d.Outputs = append(d.Outputs, outputRow{Name: render.Visible(k), Value: valueText(j.Outputs[k])})
	}
	for _, a := range res.Agents {
		for _, v := range agentVotes(a) {
			if v.WinningJob == j.ID {
				d.Row.Winner = true
			}
		}
	}
	if j.Changes != nil && (j.Changes.PatchSize > 0 || len(j.Changes.Files) > 0) {
		for _, dir := range jobDirs(jobID) {
			// The run directory has the runner's changes.patch; the store the daemon's copy.
			d.Diff = diffFrom(u.runFile(r.Context(), d.RunID, "jobs/"+dir+"/patch.diff", "jobs/"+dir+"/changes.patch"))
			if d.Diff.Present {
				break
			}
		}
		if !d.Diff.Present {
			d.Diff = diffView{Present: true, Note: "This job changed " + itoa(len(j.Changes.Files)) + " files, but its patch is not kept here."}
		}
	}
	return true
}

func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}

// logCutText says how much of the log is left off, for the template.
func (d *jobPageData) LogCutText() string {
	if d.LogCut <= 0 {
		return ""
	}
	return "The first " + byteSize(d.LogCut) + " of this log are left off: its last " + byteSize(maxShownLog) + " are shown."
}
