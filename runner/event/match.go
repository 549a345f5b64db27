package event

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/runner/event/pattern"
)

// Pattern is a compiled branch, tag or path filter pattern (see CompilePattern).
type Pattern = pattern.Pattern

// CompilePattern compiles one GitHub Actions filter pattern (`*`, `**`, `?`, `+`, `[]`, `\`,
// leading `!`). Its errors are *pattern.Error values that name the offset and the problem.
// Config validation can use package pattern directly, which does not import config.
func CompilePattern(p string) (*Pattern, error) { return pattern.Compile(p) }

// DefaultPullRequestTypes are the pull_request actions that run a routine without `types:`.
var DefaultPullRequestTypes = []string{"opened", "synchronize", "reopened"}

// DefaultIssueCommentTypes are the issue_comment actions that run a routine without `types:`.
var DefaultIssueCommentTypes = []string{"created"}

// Match reports whether ev starts a routine whose `on:` block is on, with GitHub Actions
// semantics. When it does not, why is a short human reason (`branch "dev" not in branches`)
// that `runner exec --dry-run` prints.
//
// Match does not know the routine's name, so it cannot check events that target a routine by
// name (dispatch, webhook, `/agents run`, check-run re-runs, a schedule with Routine set):
// use MatchRoutine for those, or for everything.
func Match(on *config.Triggers, ev *Event) (ok bool, why string) {
	if ev == nil {
		return false, "no event"
	}
	if on == nil {
		return false, "routine has no triggers"
	}
	switch ev.Kind {
	case KindPush:
		if on.Push == nil {
			return false, "routine has no push trigger"
		}
		return matchPush(on.Push, ev)
	case KindPullRequest:
		if on.PullRequest == nil {
			return false, "routine has no pull_request trigger"
		}
		return matchPullRequest(on.PullRequest, ev)
	case KindIssueComment:
		return matchIssueComment(on.IssueComment, ev)
	case KindSchedule:
		if len(on.Schedule) == 0 {
			return false, "routine has no schedule trigger"
		}
		if ev.Cron == "" {
			return true, "" // a schedule run asked for by hand (`runner exec --event schedule`)
		}
		for _, s := range on.Schedule {
			if s.Cron == ev.Cron {
				return true, ""
			}
		}
		return false, fmt.Sprintf("cron %q is not one of the routine's schedules", ev.Cron)
	case KindDispatch:
		if on.Dispatch == nil {
			return false, "routine has no dispatch trigger"
		}
		return true, ""
	case KindWebhook:
		if on.Webhook == nil {
			return false, "routine has no webhook trigger"
		}
		return true, ""
	case KindCheckRun:
		if ev.Action != "rerequested" && ev.Action != "requested_action" {
			return false, fmt.Sprintf("check_run %q does not start routines", ev.Action)
		}
		if ev.Routine == "" {
			return false, "check run is not an agents/<routine> check"
		}
		return true, ""
	case KindCheckSuite:
		// A re-requested suite re-runs what a push of its head would run. `requested` comes
		// with every push, whose own event already started those routines.
		if ev.Action != "rerequested" {
			return false, fmt.Sprintf("check_suite %q does not start routines", ev.Action)
		}
		if on.Push == nil {
			return false, "routine has no push trigger to re-run"
		}
		asPush := *ev
		asPush.Kind, asPush.Deleted, asPush.Tag, asPush.ChangedFiles = KindPush, false, "", nil
		return matchPush(on.Push, &asPush)
	case KindInstallation, KindPing:
		return false, ev.Kind + " events do not start routines"
	}
	return false, fmt.Sprintf("unknown event kind %q", ev.Kind)
}

// MatchRoutine is Match plus the name check for events that target one routine: a dispatch,
// a generic webhook, an `/agents run <routine>` comment, a check-run re-run, or a schedule
// with Routine set. An empty ev.Routine on a dispatch or webhook matches every routine that
// declares the trigger (`runner exec --event dispatch` without a routine).
func MatchRoutine(r *config.Routine, ev *Event) (ok bool, why string) {
	if r == nil {
		return false, "no routine"
	}
	if ev == nil {
		return false, "no event"
	}
	switch ev.Kind {
	case KindDispatch, KindWebhook, KindIssueComment, KindCheckRun, KindSchedule:
		if ev.Routine != "" && ev.Routine != r.Name {
			return false, fmt.Sprintf("event targets routine %q", ev.Routine)
		}
	}
	return Match(&r.On, ev)
}

func matchPush(t *config.PushTrigger, ev *Event) (bool, string) {
	if ev.Deleted {
		return false, fmt.Sprintf("push deletes %s; deletions never run", refDesc(ev))
	}
	hasBranches := len(t.Branches) > 0 || len(t.BranchesIgnore) > 0
	hasTags := len(t.Tags) > 0 || len(t.TagsIgnore) > 0
	if ev.Tag != "" {
		if hasBranches && !hasTags {
			return false, fmt.Sprintf("tag %q pushed but only branch filters are given", ev.Tag)
		}
		// GitHub does not evaluate path filters for tag pushes.
		return matchRef("tag", ev.Tag, t.Tags, t.TagsIgnore, "tags")
	}
	if hasTags && !hasBranches {
		return false, fmt.Sprintf("branch %q pushed but only tag filters are given", ev.Branch)
	}
	if ok, why := matchRef("branch", ev.Branch, t.Branches, t.BranchesIgnore, "branches"); !ok {
		return false, why
	}
	return matchPaths(t.Paths, t.PathsIgnore, ev.ChangedFiles)
}

func matchPullRequest(t *config.PullRequestTrigger, ev *Event) (bool, string) {
	types := t.Types
	if len(types) == 0 {
		types = DefaultPullRequestTypes
	}
	if !slices.Contains(types, ev.Action) {
		return false, fmt.Sprintf("action %q not in types [%s]", ev.Action, strings.Join(types, ", "))
	}
	base := ev.Branch
	if ev.PullRequest != nil && ev.PullRequest.BaseRef != "" {
		base = ev.PullRequest.BaseRef
	}
	if ok, why := matchRef("base branch", base, t.Branches, t.BranchesIgnore, "branches"); !ok {
		return false, why
	}
	return matchPaths(t.Paths, t.PathsIgnore, ev.ChangedFiles)
}

func matchIssueComment(t *config.IssueCommentTrigger, ev *Event) (bool, string) {
	if t == nil {
		return false, "routine has no issue_comment trigger"
	}
	types := t.Types
	if len(types) == 0 {
		types = DefaultIssueCommentTypes
	}
	if !slices.Contains(types, ev.Action) {
		return false, fmt.Sprintf("action %q not in types [%s]", ev.Action, strings.Join(types, ", "))
	}
	if ev.Comment == nil || !ev.Comment.OnPullRequest {
		return false, "comment is not on a pull request"
	}
	if ev.Routine == "" {
		return false, "comment is not an `/agents run <routine>` command"
	}
	return true, ""
}

// matchRef applies a positive list or an ignore list to a branch or tag name. GitHub rejects
// a trigger with both; it never matches here either.
func matchRef(what, name string, include, ignore []string, key string) (bool, string) {
	if len(include) > 0 && len(ignore) > 0 {
		return false, fmt.Sprintf("%s and %s-ignore are both given (invalid config)", key, key)
	}
	if len(include) > 0 {
		l, err := compiled(include)
		if err != nil {
			return false, fmt.Sprintf("invalid %s: %v", key, err)
		}
		if !l.Includes(name) {
			return false, fmt.Sprintf("%s %q not in %s", what, name, key)
		}
	}
	if len(ignore) > 0 {
		l, err := compiled(ignore)
		if err != nil {
			return false, fmt.Sprintf("invalid %s-ignore: %v", key, err)
		}
		if l.Includes(name) {
			return false, fmt.Sprintf("%s %q matches %s-ignore", what, name, key)
		}
	}
	return true, ""
}

// matchPaths runs when some changed file is selected by paths, or escapes paths-ignore.
// Unknown changes (nil) run, as GitHub does when it cannot compute the diff.
func matchPaths(include, ignore, files []string) (bool, string) {
	if len(include) > 0 && len(ignore) > 0 {
		return false, "paths and paths-ignore are both given (invalid config)"
	}
	if files == nil || len(include)+len(ignore) == 0 {
		return true, ""
	}
	if len(include) > 0 {
		l, err := compiled(include)
		if err != nil {
			return false, fmt.Sprintf("invalid paths: %v", err)
		}
		if slices.ContainsFunc(files, l.Includes) {
			return true, ""
		}
		return false, fmt.Sprintf("none of %s matches paths", countFiles(files))
	}
	l, err := compiled(ignore)
	if err != nil {
		return false, fmt.Sprintf("invalid paths-ignore: %v", err)
	}
	for _, f := range files {
		if !l.Includes(f) {
			return true, ""
		}
	}
	return false, fmt.Sprintf("all of %s match paths-ignore", countFiles(files))
}

func countFiles(files []string) string {
	if len(files) == 1 {
		return fmt.Sprintf("the changed file %q", files[0])
	}
	return fmt.Sprintf("the %d changed files", len(files))
}

func refDesc(ev *Event) string {
	switch {
	case ev.Tag != "":
		return fmt.Sprintf("tag %q", ev.Tag)
	case ev.Branch != "":
		return fmt.Sprintf("branch %q", ev.Branch)
	}
	return fmt.Sprintf("ref %q", ev.Ref)
}

// patternCache keeps compiled filter lists: the same few lists from a repository's config are
// matched against every event, and compiling them each time would dominate matching. It is
// bounded because a daemon sees configs from many repositories over its life.
var patternCache = struct {
	sync.Mutex
	m map[string]pattern.List
}{m: map[string]pattern.List{}}

const patternCacheMax = 4096

func compiled(patterns []string) (pattern.List, error) {
	key := strings.Join(patterns, "\x00")
	patternCache.Lock()
	l, ok := patternCache.m[key]
	patternCache.Unlock()
	if ok {
		return l, nil
	}
	l, err := pattern.CompileList(patterns)
	if err != nil {
		return nil, err
	}
	patternCache.Lock()
	if len(patternCache.m) >= patternCacheMax {
		clear(patternCache.m)
	}
	patternCache.m[key] = l
	patternCache.Unlock()
	return l, nil
}

// Validate reports the trigger mistakes GitHub rejects, at the trigger's position: both a
// list and its -ignore list, a branches or tags list of only negations, and bad patterns. It
// is for `runner validate`; Match still behaves sensibly (never runs) on such triggers.
func Validate(on *config.Triggers) config.Errors {
	if on == nil {
		return nil
	}
	var errs config.Errors
	check := func(pos config.Pos, event, key string, include, ignore []string, refs bool) {
		if len(include) > 0 && len(ignore) > 0 {
			errs = append(errs, config.Errorf(pos, "on.%s: %s and %s-ignore cannot both be used; use %s with `!pattern` entries to exclude", event, key, key, key))
		}
		for _, l := range []struct {
			name string
			list []string
		}{{key, include}, {key + "-ignore", ignore}} {
			compiled, err := pattern.CompileList(l.list)
			if err != nil {
				errs = append(errs, config.Errorf(pos, "on.%s.%s: %v", event, l.name, err))
				continue
			}
			if refs && l.name == key && compiled.OnlyNegative() {
				errs = append(errs, config.Errorf(pos, "on.%s.%s: only negative patterns match nothing; add a positive pattern such as '**' before them", event, key))
			}
		}
	}
	if p := on.Push; p != nil {
		check(p.Pos, "push", "branches", p.Branches, p.BranchesIgnore, true)
		check(p.Pos, "push", "tags", p.Tags, p.TagsIgnore, true)
		check(p.Pos, "push", "paths", p.Paths, p.PathsIgnore, false)
	}
	if p := on.PullRequest; p != nil {
		check(p.Pos, "pull_request", "branches", p.Branches, p.BranchesIgnore, true)
		check(p.Pos, "pull_request", "paths", p.Paths, p.PathsIgnore, false)
	}
	return errs
}
