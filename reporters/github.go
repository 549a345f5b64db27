package reporters

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/runner/result"
)

// GitHub's limits on the text the reporters send (REST API, checks and issues).
const (
	// MaxCheckText is the most characters output.summary and output.text may hold.
	MaxCheckText = 65535
	// MaxAnnotationsPerRequest is how many annotations one check-run update may carry.
	MaxAnnotationsPerRequest = 50
	// MaxBody is the most characters of a pull request or comment body.
	MaxBody = 65536
	// maxTitle keeps check-run titles to what GitHub's UI shows.
	maxTitle = 255
	// maxLogTail is how much of each failing job's log the check run shows.
	maxLogTail = 4000
)

// GitHubRepo names the repository a GitHub reporter writes to.
type GitHubRepo struct {
	Owner string
	Name  string
}

// FullName is owner/name.
func (r GitHubRepo) FullName() string { return r.Owner + "/" + r.Name }

// truncate cuts s to at most n bytes on a rune boundary, saying so at the end. GitHub counts
// characters, and bytes are never fewer, so the result always fits.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const note = "\n\n… (truncated)"
	cut := n - len(note)
	if cut < 0 {
		cut = 0
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + note
}

// tail keeps the last n bytes of s, starting on a line when one begins close enough.
func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if len(s) <= n {
		return s
	}
	cut := len(s) - n
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	if i := strings.IndexByte(s[cut:], '\n'); i >= 0 && i < 200 {
		cut += i + 1
	}
	return "…\n" + s[cut:]
}

// fence returns a code fence longer than any backtick run in s, so a log cannot close it.
func fence(s string) string {
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}

// failingLogs renders each failing job's log tail for a check run's output.text.
func failingLogs(res *result.Run) string {
	var b strings.Builder
	for _, j := range res.Jobs {
		switch j.Outcome {
		case result.Success, result.Skipped, result.Cancelled:
			continue
		}
		fmt.Fprintf(&b, "### %s (%s", j.ID, j.Outcome)
		if j.Outcome == result.Failed {
			fmt.Fprintf(&b, ", exit %d", j.ExitCode)
		}
		b.WriteString(")\n\n")
		if j.Error != "" {
			fmt.Fprintf(&b, "> %s\n\n", strings.ReplaceAll(j.Error, "\n", "\n> "))
		}
		if t := tail(j.LogTail, maxLogTail); t != "" {
			f := fence(t)
			fmt.Fprintf(&b, "%s\n%s\n%s\n\n", f, t, f)
		}
	}
	return b.String()
}

// forkNote explains, in reports, why a run that would publish a pull request did not: the
// runner never pushes into a fork, and changes from a fork's code are not proposed upstream.
func forkNote(info *RunInfo) string {
	if info == nil || info.Plan == nil || info.Plan.Publish.PullRequest == nil || !isForkPR(info.Event) {
		return ""
	}
	return "> **Note:** no pull request was opened: this pull request comes from a fork, and the runner does not push branches into forks.\n\n"
}

func isForkPR(ev *event.Event) bool {
	return ev != nil && ev.PullRequest != nil && ev.PullRequest.Fork
}

// prNumber is the pull request an event is about, 0 when none.
func prNumber(ev *event.Event) int {
	switch {
	case ev == nil:
		return 0
	case ev.PullRequest != nil && ev.PullRequest.Number > 0:
		return ev.PullRequest.Number
	case ev.Comment != nil && ev.Comment.OnPullRequest:
		return ev.Comment.IssueNumber
	}
	return 0
}

// BranchName is the branch that carries a routine's changes for key: agents/<routine>/<key>.
func BranchName(routine, key string) string {
	if key == "" {
		key = "default"
	}
	return "agents/" + routine + "/" + key
}
