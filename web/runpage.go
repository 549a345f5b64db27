package web

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/agentrunner/agentrunner/internal/safefile"
	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/web/render"
)

// Run files the pages read. combined.patch is the daemon's name for the run's consolidated
// patch; pull_request.json is written by the pull-request reporter.
const (
	resultFile      = "result.json"
	reportFile      = "report.md"
	combinedPatch   = "combined.patch"
	pullRequestFile = "pull_request.json"
	checkRunFile    = "check_run.json"
)

// runPage is what the run page and its JSON twin show.
type runPage struct {
	Run      store.Run
	Finished bool
	Elapsed  string
	Stages   []stage
	// Totals over the jobs of a finished run.
	Cost, Tokens string
	Turns        int
	Blocked      int
	JobCount     int
	Outcomes     string // "3 success, 1 failed"
	ReportHTML   template.HTML
	Diff         diffView
	Conflicts    []conflictRow
	Applied      []string
	Commit       string
	PullRequest  *pullRequestLink
	CheckRun     *checkRunLink
	// Partial says the result could not be read: what is shown comes from the plan.
	Partial bool
}

type conflictRow struct {
	Job, Href string
	Files     []string
}

// checkRunLink is the run's check run on GitHub, as its reporter recorded it.
type checkRunLink struct {
	URL  string
	Name string
}

type pullRequestLink struct {
	URL    string
	Number int
	Repo   string
}

// loadRun gathers a run's page. A run's result is only its own once it is completed: a run
// queued again may still have its earlier result in the run directory.
func (u *UI) loadRun(ctx context.Context, id string, withFiles bool) (*runPage, error) {
	run, err := u.Store.GetRun(ctx, id)
	if err != nil {
		return nil, err
	}
	p := &runPage{Run: run, Finished: run.Status == store.RunCompleted, Elapsed: durationText(runElapsed(run, time.Now()))}
	var res *result.Run
	if p.Finished {
		if b, err := u.runFile(ctx, id, resultFile, ""); err == nil {
			var r result.Run
			if json.Unmarshal(b, &r) == nil {
				res = &r
			}
		}
	}
	if res != nil {
		p.Stages = stagesFromResult(id, res)
		p.totals(res)
	} else {
		p.Partial = p.Finished
		var pl plan.Run
		if len(run.Plan) > 0 && json.Unmarshal(run.Plan, &pl) == nil {
			started := u.jobsStarted(ctx, id)
			p.Stages = stagesFromPlan(id, &pl, func(job string) bool { return !p.Finished && started(job) })
			p.Stages = append(p.Stages, u.workflowStages(ctx, id, &pl, p.Finished)...)
		}
	}
	if !withFiles {
		return p, nil
	}
	if b, err := u.runFile(ctx, id, reportFile, ""); err == nil {
		p.ReportHTML = render.Markdown(b)
	} else if res != nil && res.Report != "" {
		p.ReportHTML = render.Markdown([]byte(res.Report))
	}
	if p.Finished {
		p.Diff = u.loadDiff(ctx, id, combinedPatch, "")
		p.PullRequest = u.pullRequest(ctx, id)
	}
	p.CheckRun = u.checkRun(ctx, id) // made when the run is queued: linked while it runs too
	if res != nil {
		p.Commit = render.Visible(res.Commit)
		for _, a := range res.Applied {
			p.Applied = append(p.Applied, render.Visible(a))
		}
		p.Diff.Conflicted = map[string]string{}
		for _, c := range res.Conflicts {
			row := conflictRow{Job: render.Visible(c.Job), Href: jobHref(id, c.Job)}
			for _, f := range c.Files {
				row.Files = append(row.Files, render.Visible(f))
				p.Diff.Conflicted[render.Visible(f)] = appendJob(p.Diff.Conflicted[render.Visible(f)], row.Job)
			}
			p.Conflicts = append(p.Conflicts, row)
		}
	}
	return p, nil
}

func appendJob(list, job string) string {
	if list == "" {
		return job
	}
	return list + ", " + job
}

func (p *runPage) totals(res *result.Run) {
	us := res.Usage()
	p.Cost, p.Tokens, p.Turns, p.JobCount = costText(us.CostUSD), tokensText(us), us.Turns, len(res.Jobs)
	counts := map[string]int{}
	var order []string
	for _, j := range res.Jobs {
		p.Blocked += len(j.Blocked)
		o := render.Visible(string(j.Outcome))
		if counts[o] == 0 {
			order = append(order, o)
		}
		counts[o]++
	}
	var parts []string
	for _, o := range order {
		parts = append(parts, itoa(counts[o])+" "+o)
	}
	p.Outcomes = strings.Join(parts, ", ")
}

// workflowStages lists, while a run goes on, the jobs the store knows that its plan does not:
// those of the workflows its orchestrators wrote, grouped by agent in the order they started.
func (u *UI) workflowStages(ctx context.Context, runID string, pl *plan.Run, finished bool) []stage {
	js, err := u.Store.RunJobs(ctx, runID)
	if err != nil {
		return nil
	}
	inPlan := map[string]bool{}
	for _, n := range pl.Nodes {
		if n != nil {
			inPlan[n.Agent] = true
		}
	}
	slices.SortStableFunc(js, func(a, b store.RunJob) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
	var out []stage
	at := map[string]int{}
	for _, j := range js {
		agent := runner.JobAgent(j.Job)
		if inPlan[agent] {
			continue
		}
		i, ok := at[agent]
		if !ok {
			i = len(out)
			at[agent] = i
			out = append(out, stage{Name: render.Visible(agent)})
		}
		status := j.State
		if status == store.RunJobFinished || finished {
			status = "ended"
		}
		out[i].Jobs = append(out[i].Jobs, jobRow{ID: render.Visible(j.Job), Href: jobHref(runID, j.Job), Status: status})
	}
	return out
}

// jobsStarted says which of a run's jobs have started: those the store records running or
// ended, whichever daemon of the fleet runs them, and those whose log exists in this daemon's
// run directory (the runner creates it when the job starts).
func (u *UI) jobsStarted(ctx context.Context, runID string) func(job string) bool {
	states := map[string]bool{}
	if js, err := u.Store.RunJobs(ctx, runID); err == nil {
		for _, j := range js {
			states[j.Job] = j.State == store.RunJobRunning || j.State == store.RunJobFinished
		}
	}
	dir, local := u.runDir(runID)
	return func(job string) bool {
		if states[job] {
			return true
		}
		if !local {
			return false
		}
		for _, d := range jobDirs(job) {
			if f, err := safefile.Open(dir, "jobs/"+d+"/log.txt"); err == nil {
				f.Close()
				return true
			}
		}
		return false
	}
}

// checkRun reads the check run recorded for the run; only a web link is linked.
func (u *UI) checkRun(ctx context.Context, id string) *checkRunLink {
	b, err := u.runFile(ctx, id, checkRunFile, "")
	if err != nil {
		return nil
	}
	var rec struct {
		HTMLURL string `json:"html_url"`
		Name    string `json:"name"`
	}
	if json.Unmarshal(b, &rec) != nil || !strings.HasPrefix(rec.HTMLURL, "https://") {
		return nil
	}
	name := render.Visible(rec.Name)
	if name == "" {
		name = "on GitHub"
	}
	return &checkRunLink{URL: rec.HTMLURL, Name: name}
}

// pullRequest reads the pull request the run opened or updated; only a web link is linked.
func (u *UI) pullRequest(ctx context.Context, id string) *pullRequestLink {
	b, err := u.runFile(ctx, id, pullRequestFile, "")
	if err != nil {
		return nil
	}
	var rec struct {
		HTMLURL string `json:"html_url"`
		Number  int    `json:"number"`
		Repo    string `json:"repo"`
	}
	if json.Unmarshal(b, &rec) != nil || (rec.Number <= 0 && rec.HTMLURL == "") {
		return nil
	}
	pr := &pullRequestLink{Number: rec.Number, Repo: render.Visible(rec.Repo)}
	if strings.HasPrefix(rec.HTMLURL, "https://") || strings.HasPrefix(rec.HTMLURL, "http://") {
		pr.URL = rec.HTMLURL
	}
	return pr
}

func (u *UI) run(w http.ResponseWriter, r *http.Request) {
	p, ok := u.loadRunOr404(w, r, true)
	if !ok {
		return
	}
	se, _ := sessionFrom(r.Context())
	u.render(w, http.StatusOK, "run", map[string]any{"Session": se.Session, "CSRF": se.csrfToken(),
		"Page": p, "Run": p.Run, "CanControl": u.canSteer(r, p.Run.Repo)})
}

// runState is the run page's JSON twin, polled while the run goes on.
type runState struct {
	Status     string     `json:"status"`
	Conclusion string     `json:"conclusion,omitempty"`
	Finished   bool       `json:"finished"`
	Elapsed    string     `json:"elapsed"`
	Jobs       []jobState `json:"jobs"`
}

type jobState struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Duration string `json:"duration,omitempty"`
}

func (u *UI) runState(w http.ResponseWriter, r *http.Request) {
	p, ok := u.loadRunOr404(w, r, false)
	if !ok {
		return
	}
	st := runState{Status: p.Run.Status, Conclusion: p.Run.Conclusion, Finished: p.Finished, Elapsed: p.Elapsed, Jobs: []jobState{}}
	for _, s := range p.Stages {
		for _, j := range s.Jobs {
			st.Jobs = append(st.Jobs, jobState{ID: j.ID, Status: j.Status, Duration: j.Duration})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

func (u *UI) loadRunOr404(w http.ResponseWriter, r *http.Request, withFiles bool) (*runPage, bool) {
	p, err := u.loadRun(r.Context(), r.PathValue("id"), withFiles)
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "no such run", http.StatusNotFound)
		return nil, false
	}
	if err != nil {
		u.log().Error("read run", "run_id", r.PathValue("id"), "err", err)
		http.Error(w, "cannot read the run now; try again shortly", http.StatusServiceUnavailable)
		return nil, false
	}
	return p, true
}
