package reporters

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	gh "github.com/google/go-github/v62/github"

	"github.com/agentrunner/agentrunner/internal/english"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/result"
)

// CheckRun reports one run as the check run `agents/<routine>` on the run's commit: queued when
// planned, in_progress when the first agent starts, completed with a conclusion, a summary, the
// failing agents' log tails and the findings as annotations. The run id is its external_id: a
// retried job finds the check run it made before and updates it instead of adding another.
//
// A CheckRun serves one run; make one per run.
type CheckRun struct {
	client *gh.Client
	repo   GitHubRepo
	// Files, when set, keeps the check run's link with the run (CheckRunFile), so the control
	// room's run page links it.
	Files RunFiles

	mu  sync.Mutex
	id  int64
	url string
}

// CheckRunFile is the run file recording a run's check run (a CheckRunRecord as JSON).
const CheckRunFile = "check_run.json"

// CheckRunRecord is what CheckRunFile holds.
type CheckRunRecord struct {
	HTMLURL string `json:"html_url"`
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Repo    string `json:"repo"` // owner/name
}

// NewCheckRun returns a check-run reporter writing to repo through client (an installation's
// REST client from package github).
func NewCheckRun(client *gh.Client, repo GitHubRepo) *CheckRun {
	return &CheckRun{client: client, repo: repo}
}

// ID is the check run's id once created or found, 0 before.
func (c *CheckRun) ID() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// Report implements Reporter.
func (c *CheckRun) Report(ctx context.Context, u Update) error {
	switch u.Kind {
	case RunQueued, RunStarted, RunFinished:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	info := u.Run
	name := event.CheckRunName(info.Plan.Routine)
	if c.id == 0 {
		created, err := c.findOrCreate(ctx, info, name)
		if err != nil {
			return err
		}
		c.record(ctx, info.ID, name)
		if created && u.Kind == RunQueued {
			return nil
		}
	}
	opts := gh.UpdateCheckRunOptions{Name: name, ExternalID: gh.String(info.ID)}
	if info.DetailsURL != "" {
		opts.DetailsURL = gh.String(info.DetailsURL)
	}
	switch u.Kind {
	case RunQueued:
		// Found from an earlier attempt of the same run: show it as waiting again.
		opts.Status = gh.String("queued")
	case RunStarted:
		opts.Status = gh.String("in_progress")
	case RunFinished:
		return c.complete(ctx, u, opts)
	}
	if _, _, err := c.client.Checks.UpdateCheckRun(ctx, c.repo.Owner, c.repo.Name, c.id, opts); err != nil {
		return fmt.Errorf("set check run %s of %s to %s: %w", name, c.repo.FullName(), *opts.Status, err)
	}
	return nil
}

// findOrCreate looks the check run up by commit, name and external id, and creates it queued
// when there is none. The lookup comes first because a POST cannot be retried safely.
func (c *CheckRun) findOrCreate(ctx context.Context, info *RunInfo, name string) (created bool, err error) {
	sha := info.Plan.SHA
	opts := &gh.ListCheckRunsOptions{CheckName: gh.String(name), Filter: gh.String("all"), ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		list, resp, err := c.client.Checks.ListCheckRunsForRef(ctx, c.repo.Owner, c.repo.Name, sha, opts)
		if err != nil {
			return false, fmt.Errorf("look up check run %s at %s in %s: %w", name, sha, c.repo.FullName(), err)
		}
		for _, cr := range list.CheckRuns {
			if cr.GetExternalID() == info.ID {
				c.id, c.url = cr.GetID(), cr.GetHTMLURL()
				return false, nil
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	create := gh.CreateCheckRunOptions{Name: name, HeadSHA: sha, Status: gh.String("queued"), ExternalID: gh.String(info.ID)}
	if info.DetailsURL != "" {
		create.DetailsURL = gh.String(info.DetailsURL)
	}
	cr, _, err := c.client.Checks.CreateCheckRun(ctx, c.repo.Owner, c.repo.Name, create)
	if err != nil {
		return false, fmt.Errorf("create check run %s at %s in %s: %w", name, sha, c.repo.FullName(), err)
	}
	c.id, c.url = cr.GetID(), cr.GetHTMLURL()
	return true, nil
}

// record saves CheckRunFile; a failure costs only the link, so it is not the run's error.
func (c *CheckRun) record(ctx context.Context, runID, name string) {
	if c.Files == nil || c.id == 0 {
		return
	}
	b, _ := json.Marshal(CheckRunRecord{HTMLURL: c.url, ID: c.id, Name: name, Repo: c.repo.FullName()})
	_ = c.Files.SaveRunFile(ctx, runID, CheckRunFile, b)
}

// complete concludes the check run. GitHub takes at most 50 annotations per request, so the
// first batch rides on the completing update and the rest follow in further updates, which add
// to the annotations already there.
func (c *CheckRun) complete(ctx context.Context, u Update, opts gh.UpdateCheckRunOptions) error {
	res := u.Result
	title, summary, text := CheckOutput(u.Run, res)
	annotations := Annotations(res.Findings())
	output := func(batch []*gh.CheckRunAnnotation) *gh.CheckRunOutput {
		o := &gh.CheckRunOutput{Title: gh.String(title), Summary: gh.String(summary), Annotations: batch}
		if text != "" {
			o.Text = gh.String(text)
		}
		return o
	}
	first := annotations[:min(len(annotations), MaxAnnotationsPerRequest)]
	opts.Status = gh.String("completed")
	opts.Conclusion = gh.String(string(conclusionOf(res)))
	opts.CompletedAt = &gh.Timestamp{Time: res.Finished}
	if res.Finished.IsZero() {
		opts.CompletedAt = &gh.Timestamp{Time: u.Time}
	}
	opts.Output = output(first)
	if _, _, err := c.client.Checks.UpdateCheckRun(ctx, c.repo.Owner, c.repo.Name, c.id, opts); err != nil {
		return fmt.Errorf("complete check run %s of %s: %w", opts.Name, c.repo.FullName(), err)
	}
	for i := len(first); i < len(annotations); i += MaxAnnotationsPerRequest {
		batch := annotations[i:min(len(annotations), i+MaxAnnotationsPerRequest)]
		more := gh.UpdateCheckRunOptions{Name: opts.Name, Output: output(batch)}
		if _, _, err := c.client.Checks.UpdateCheckRun(ctx, c.repo.Owner, c.repo.Name, c.id, more); err != nil {
			return fmt.Errorf("add annotations %d-%d to check run %s of %s: %w", i+1, i+len(batch), opts.Name, c.repo.FullName(), err)
		}
	}
	return nil
}

func conclusionOf(res *result.Run) result.Conclusion {
	switch res.Conclusion {
	case result.ConclusionSuccess, result.ConclusionFailure, result.ConclusionCancelled,
		result.ConclusionTimedOut, result.ConclusionNeutral:
		return res.Conclusion
	}
	return result.ConclusionNeutral
}

// CheckOutput renders a finished run as a check run's title, summary (the run's markdown
// report, cut to GitHub's limit) and text (each failing job's log tail, secrets already masked
// by the sandbox).
func CheckOutput(info *RunInfo, res *result.Run) (title, summary, text string) {
	failed, total := 0, 0
	for _, a := range res.Agents {
		total++
		if a.Result != "success" && a.Result != "skipped" {
			failed++
		}
	}
	parts := []string{english.Count(total, "agent")}
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("%d not successful", failed))
	}
	if n := len(res.Findings()); n > 0 {
		parts = append(parts, english.Count(n, "finding"))
	}
	if n := len(res.Files); n > 0 {
		parts = append(parts, english.Count(n, "file")+" changed")
	}
	title = truncate(fmt.Sprintf("%s: %s", conclusionOf(res), strings.Join(parts, ", ")), maxTitle)
	report := res.Report
	if report == "" {
		report = fmt.Sprintf("## %s: %s\n", res.Routine, res.Conclusion)
	}
	summary = truncate(forkNote(info)+report, MaxCheckText)
	text = truncate(failingLogs(res), MaxCheckText)
	return title, summary, text
}

// Annotations turns findings into check-run annotations. Levels map to GitHub's three
// (notice, warning, failure); a finding without a path cannot be placed and is left out.
func Annotations(findings []result.Finding) []*gh.CheckRunAnnotation {
	out := make([]*gh.CheckRunAnnotation, 0, len(findings))
	for _, f := range findings {
		p := strings.TrimPrefix(strings.TrimPrefix(f.Path, "/workspace/"), "./")
		if p == "" {
			continue
		}
		start := max(f.Line, 1)
		end := max(f.EndLine, start)
		msg := f.Message
		if msg == "" {
			msg = "(no message)"
		}
		a := &gh.CheckRunAnnotation{
			Path:            gh.String(p),
			StartLine:       gh.Int(start),
			EndLine:         gh.Int(end),
			AnnotationLevel: gh.String(annotationLevel(f.Level)),
			Message:         gh.String(truncate(msg, 64<<10)),
		}
		title := f.Title
		if title == "" && f.Job != "" {
			title = f.Job
		}
		if title != "" {
			a.Title = gh.String(truncate(title, maxTitle))
		}
		out = append(out, a)
	}
	return out
}

func annotationLevel(level string) string {
	switch strings.ToLower(strings.TrimSpace(level)) {
	case "failure", "error", "fatal", "critical", "high":
		return "failure"
	case "warning", "warn", "medium":
		return "warning"
	}
	return "notice"
}
