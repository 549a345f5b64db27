package event

import (
	"slices"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/runner/event/pattern"
)

// anyTriggers declares every trigger without filters.
var anyTriggers = config.Triggers{
	Push:         &config.PushTrigger{},
	PullRequest:  &config.PullRequestTrigger{},
	IssueComment: &config.IssueCommentTrigger{},
	Schedule:     []config.Schedule{{Cron: "0 3 * * *"}},
	Dispatch:     &config.DispatchTrigger{},
	Webhook:      &config.WebhookTrigger{},
}

func branchPush(branch string, files ...string) *Event {
	return &Event{Kind: KindPush, Ref: "refs/heads/" + branch, Branch: branch, SHA: "abc", ChangedFiles: files}
}

func tagPush(tag string) *Event {
	return &Event{Kind: KindPush, Ref: "refs/tags/" + tag, Tag: tag, SHA: "abc"}
}

func pullRequest(action, base string, files ...string) *Event {
	return &Event{Kind: KindPullRequest, Action: action, Branch: base, SHA: "abc", ChangedFiles: files,
		PullRequest: &PullRequest{Number: 1, BaseRef: base, HeadRef: "feature"}}
}

func comment(body string, onPR bool) *Event {
	r, _ := ParseCommand(body)
	return &Event{Kind: KindIssueComment, Action: "created", Routine: r,
		Comment: &Comment{ID: 1, Body: body, OnPullRequest: onPR, IssueNumber: 1}}
}

func TestMatchFollowsGitHubActionsTriggerRules(t *testing.T) {
	t.Parallel()
	push := func(p config.PushTrigger) *config.Triggers { return &config.Triggers{Push: &p} }
	pr := func(p config.PullRequestTrigger) *config.Triggers { return &config.Triggers{PullRequest: &p} }
	deleted := branchPush("main")
	deleted.Deleted = true
	deletedTag := tagPush("v1")
	deletedTag.Deleted = true
	unknownFiles := branchPush("main")
	unknownFiles.ChangedFiles = nil
	noFiles := branchPush("main")
	noFiles.ChangedFiles = []string{}
	tests := []struct {
		name    string
		on      *config.Triggers
		ev      *Event
		want    bool
		wantWhy string
	}{
		// push: branches and tags
		{"a push to any branch runs a routine with a bare push trigger", push(config.PushTrigger{}), branchPush("dev"), true, ""},
		{"a tag push runs a routine with a bare push trigger", push(config.PushTrigger{}), tagPush("v1"), true, ""},
		{"a push to a listed branch runs", push(config.PushTrigger{Branches: []string{"main", "release/**"}}), branchPush("release/1.x/rc"), true, ""},
		{"a push to an unlisted branch does not run", push(config.PushTrigger{Branches: []string{"main"}}), branchPush("dev"), false, `branch "dev" not in branches`},
		{"a star does not match a branch with a slash", push(config.PushTrigger{Branches: []string{"*"}}), branchPush("feature/x"), false, `branch "feature/x" not in branches`},
		{"a later negation excludes a branch", push(config.PushTrigger{Branches: []string{"releases/**", "!releases/**-alpha"}}), branchPush("releases/10-alpha"), false, "not in branches"},
		{"a positive pattern after a negation re-includes a branch", push(config.PushTrigger{Branches: []string{"releases/**", "!releases/**-alpha", "releases/keep-alpha"}}), branchPush("releases/keep-alpha"), true, ""},
		{"a push to an ignored branch does not run", push(config.PushTrigger{BranchesIgnore: []string{"dependabot/**"}}), branchPush("dependabot/npm/x"), false, `branch "dependabot/npm/x" matches branches-ignore`},
		{"a push to a branch that is not ignored runs", push(config.PushTrigger{BranchesIgnore: []string{"dependabot/**"}}), branchPush("main"), true, ""},
		{"a tag push does not run when only branches are filtered", push(config.PushTrigger{Branches: []string{"**"}}), tagPush("v1"), false, "only branch filters"},
		{"a branch push does not run when only tags are filtered", push(config.PushTrigger{Tags: []string{"v*"}}), branchPush("main"), false, "only tag filters"},
		{"a matching tag runs", push(config.PushTrigger{Branches: []string{"main"}, Tags: []string{"v[12].[0-9]+.[0-9]+"}}), tagPush("v1.10.1"), true, ""},
		{"a tag outside the tags list does not run", push(config.PushTrigger{Tags: []string{"v2*"}}), tagPush("v1.0"), false, `tag "v1.0" not in tags`},
		{"an ignored tag does not run", push(config.PushTrigger{TagsIgnore: []string{"*-rc*"}}), tagPush("v1-rc1"), false, "matches tags-ignore"},
		{"a deleted branch never runs", push(config.PushTrigger{}), deleted, false, `push deletes branch "main"`},
		{"a deleted tag never runs", push(config.PushTrigger{Tags: []string{"**"}}), deletedTag, false, `push deletes tag "v1"`},
		{"branches with branches-ignore never runs", push(config.PushTrigger{Branches: []string{"main"}, BranchesIgnore: []string{"dev"}}), branchPush("main"), false, "invalid config"},
		{"an invalid branch pattern never runs and says so", push(config.PushTrigger{Branches: []string{"v[1-"}}), branchPush("v1"), false, "invalid branches"},
		{"only negative branches match nothing", push(config.PushTrigger{Branches: []string{"!dev"}}), branchPush("main"), false, "not in branches"},
		// push: paths
		{"a change under a listed path runs", push(config.PushTrigger{Paths: []string{"src/**"}}), branchPush("main", "README.md", "src/a/b.go"), true, ""},
		{"no change under a listed path does not run", push(config.PushTrigger{Paths: []string{"src/**"}}), branchPush("main", "README.md"), false, `none of the changed file "README.md" matches paths`},
		{"a negated path excludes generated files", push(config.PushTrigger{Paths: []string{"src/**", "!src/gen/**"}}), branchPush("main", "src/gen/a.go", "docs/x"), false, "none of the 2 changed files matches paths"},
		{"path filters run when the changed files are unknown", push(config.PushTrigger{Paths: []string{"src/**"}}), unknownFiles, true, ""},
		{"path filters do not run when nothing changed", push(config.PushTrigger{Paths: []string{"**"}}), noFiles, false, "none of the 0 changed files"},
		{"a change outside paths-ignore runs", push(config.PushTrigger{PathsIgnore: []string{"docs/**"}}), branchPush("main", "docs/a.md", "main.go"), true, ""},
		{"only ignored changes do not run", push(config.PushTrigger{PathsIgnore: []string{"docs/**", "**.md"}}), branchPush("main", "docs/a.txt", "README.md"), false, "all of the 2 changed files match paths-ignore"},
		{"paths with paths-ignore never runs", push(config.PushTrigger{Paths: []string{"a"}, PathsIgnore: []string{"b"}}), branchPush("main", "a"), false, "invalid config"},
		{"branches and paths must both be satisfied", push(config.PushTrigger{Branches: []string{"main"}, Paths: []string{"src/**"}}), branchPush("dev", "src/a.go"), false, "not in branches"},
		{"path filters are not evaluated for tag pushes", push(config.PushTrigger{Tags: []string{"v*"}, Paths: []string{"src/**"}}), tagPush("v1"), true, ""},
		// pull_request
		{"an opened pull request runs by default", pr(config.PullRequestTrigger{}), pullRequest("opened", "main"), true, ""},
		{"a synchronized pull request runs by default", pr(config.PullRequestTrigger{}), pullRequest("synchronize", "main"), true, ""},
		{"a reopened pull request runs by default", pr(config.PullRequestTrigger{}), pullRequest("reopened", "main"), true, ""},
		{"a closed pull request does not run by default", pr(config.PullRequestTrigger{}), pullRequest("closed", "main"), false, `action "closed" not in types [opened, synchronize, reopened]`},
		{"a labeled pull request runs when types lists it", pr(config.PullRequestTrigger{Types: []string{"labeled"}}), pullRequest("labeled", "main"), true, ""},
		{"types replace the defaults", pr(config.PullRequestTrigger{Types: []string{"labeled"}}), pullRequest("opened", "main"), false, `action "opened" not in types [labeled]`},
		{"pull requests match the base branch", pr(config.PullRequestTrigger{Branches: []string{"main"}}), pullRequest("opened", "main"), true, ""},
		{"a pull request into another base does not run", pr(config.PullRequestTrigger{Branches: []string{"main"}}), pullRequest("opened", "dev"), false, `base branch "dev" not in branches`},
		{"a pull request into an ignored base does not run", pr(config.PullRequestTrigger{BranchesIgnore: []string{"gh-pages"}}), pullRequest("opened", "gh-pages"), false, "matches branches-ignore"},
		{"a pull request touching a listed path runs", pr(config.PullRequestTrigger{Paths: []string{"**.go"}}), pullRequest("opened", "main", "cmd/x.go"), true, ""},
		{"a pull request touching no listed path does not run", pr(config.PullRequestTrigger{Paths: []string{"**.go"}}), pullRequest("opened", "main", "README.md"), false, "matches paths"},
		{"a pull request does not run a push-only routine", push(config.PushTrigger{}), pullRequest("opened", "main"), false, "routine has no pull_request trigger"},
		{"a push does not run a pull-request-only routine", pr(config.PullRequestTrigger{}), branchPush("main"), false, "routine has no push trigger"},
		// issue_comment
		{"an /agents run comment on a pull request runs", &anyTriggers, comment("/agents run review", true), true, ""},
		{"an /agents run comment on an issue does not run", &anyTriggers, comment("/agents run review", false), false, "comment is not on a pull request"},
		{"an ordinary comment does not run", &anyTriggers, comment("looks good", true), false, "not an `/agents run <routine>` command"},
		{"a comment does not run a routine without an issue_comment trigger", push(config.PushTrigger{}), comment("/agents run review", true), false, "no issue_comment trigger"},
		{"an edited comment does not run by default", &anyTriggers, func() *Event { e := comment("/agents run x", true); e.Action = "edited"; return e }(), false, `action "edited" not in types`},
		// schedule, dispatch, webhook
		{"a schedule runs the routine with that cron", &anyTriggers, Scheduled(Repo{}, "abc", "main", "0 3 * * *", timeZero), true, ""},
		{"another cron does not run", &anyTriggers, Scheduled(Repo{}, "abc", "main", "0 4 * * *", timeZero), false, `cron "0 4 * * *" is not one of the routine's schedules`},
		{"a schedule without a cron runs any scheduled routine", &anyTriggers, Scheduled(Repo{}, "abc", "main", "", timeZero), true, ""},
		{"a schedule does not run an unscheduled routine", push(config.PushTrigger{}), Scheduled(Repo{}, "abc", "main", "0 3 * * *", timeZero), false, "no schedule trigger"},
		{"a dispatch runs a routine that allows it", &anyTriggers, Dispatched(Repo{}, "abc", "main", "r", nil), true, ""},
		{"a dispatch does not run a routine that does not allow it", push(config.PushTrigger{}), Dispatched(Repo{}, "abc", "main", "r", nil), false, "no dispatch trigger"},
		{"a webhook does not run a routine without a webhook trigger", push(config.PushTrigger{}), &Event{Kind: KindWebhook, Routine: "r"}, false, "no webhook trigger"},
		// GitHub checks and the rest
		{"a re-requested agents check run runs", &anyTriggers, &Event{Kind: KindCheckRun, Action: "rerequested", Routine: "r"}, true, ""},
		{"a re-requested foreign check run does not run", &anyTriggers, &Event{Kind: KindCheckRun, Action: "rerequested"}, false, "not an agents/<routine> check"},
		{"a completed check run does not run", &anyTriggers, &Event{Kind: KindCheckRun, Action: "completed", Routine: "r"}, false, `check_run "completed" does not start routines`},
		{"a re-requested check suite re-runs matching push routines", push(config.PushTrigger{Branches: []string{"main"}, Paths: []string{"src/**"}}), &Event{Kind: KindCheckSuite, Action: "rerequested", Branch: "main"}, true, ""},
		{"a re-requested check suite on another branch does not run", push(config.PushTrigger{Branches: []string{"main"}}), &Event{Kind: KindCheckSuite, Action: "rerequested", Branch: "dev"}, false, `branch "dev" not in branches`},
		{"a requested check suite leaves the work to the push", &anyTriggers, &Event{Kind: KindCheckSuite, Action: "requested", Branch: "main"}, false, "does not start routines"},
		{"a ping never runs", &anyTriggers, &Event{Kind: KindPing}, false, "ping events do not start routines"},
		{"an installation never runs", &anyTriggers, &Event{Kind: KindInstallation}, false, "installation events do not start routines"},
		{"an unknown kind never runs", &anyTriggers, &Event{Kind: "fork"}, false, `unknown event kind "fork"`},
		{"nil triggers never run", nil, branchPush("main"), false, "routine has no triggers"},
		{"a nil event never runs", &anyTriggers, nil, false, "no event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ok, why := Match(tt.on, tt.ev)
			if ok != tt.want {
				t.Fatalf("Match = %v (%q), want %v", ok, why, tt.want)
			}
			if ok && why != "" {
				t.Errorf("why = %q on a match, want empty", why)
			}
			if !ok && !strings.Contains(why, tt.wantWhy) {
				t.Errorf("why = %q, want it to contain %q", why, tt.wantWhy)
			}
		})
	}
}

func TestMatchRoutineChecksTheTargetedRoutine(t *testing.T) {
	t.Parallel()
	review := &config.Routine{Name: "review", On: anyTriggers}
	tests := []struct {
		name    string
		ev      *Event
		want    bool
		wantWhy string
	}{
		{"a dispatch of this routine runs", Dispatched(Repo{}, "abc", "main", "review", nil), true, ""},
		{"a dispatch of another routine does not run", Dispatched(Repo{}, "abc", "main", "other", nil), false, `event targets routine "other"`},
		{"a dispatch naming no routine runs every dispatchable routine", Dispatched(Repo{}, "abc", "main", "", nil), true, ""},
		{"a webhook for another routine does not run", &Event{Kind: KindWebhook, Routine: "other"}, false, "targets routine"},
		{"a comment naming this routine runs", comment("/agents run review", true), true, ""},
		{"a comment naming another routine does not run", comment("/agents run lint", true), false, `event targets routine "lint"`},
		{"a check run of another routine does not re-run this one", &Event{Kind: KindCheckRun, Action: "rerequested", Routine: "lint"}, false, "targets routine"},
		{"a schedule aimed at another routine does not run", func() *Event { e := Scheduled(Repo{}, "a", "main", "0 3 * * *", timeZero); e.Routine = "x"; return e }(), false, "targets routine"},
		{"a push ignores the routine name", branchPush("main"), true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ok, why := MatchRoutine(review, tt.ev)
			if ok != tt.want || !strings.Contains(why, tt.wantWhy) {
				t.Errorf("MatchRoutine = %v, %q; want %v, %q", ok, why, tt.want, tt.wantWhy)
			}
		})
	}
	if ok, _ := MatchRoutine(nil, branchPush("main")); ok {
		t.Error("a nil routine matched")
	}
}

func TestMatchRealPayloads(t *testing.T) {
	t.Parallel()
	on := &config.Triggers{
		Push:        &config.PushTrigger{Branches: []string{"master"}, Paths: []string{"**.md"}},
		PullRequest: &config.PullRequestTrigger{Branches: []string{"master"}},
	}
	tests := []struct {
		file string
		want bool
	}{
		{"push.json", true},                   // README.md on master
		{"push.tag-created.json", false},      // only branch filters
		{"push.tag-deleted.json", false},      // deleted
		{"pull_request.opened.json", true},    // into master
		{"pull_request.closed.json", false},   // not a default type
		{"pull_request.labeled.json", false},  // not a default type
		{"issue_comment.created.json", false}, // no trigger, not a command
		{"ping.json", false},
	}
	for _, tt := range tests {
		ev, err := FromGitHub(kindOf(tt.file), "", readPayload(t, tt.file))
		if err != nil {
			t.Fatal(err)
		}
		if ok, why := Match(on, ev); ok != tt.want {
			t.Errorf("%s: Match = %v (%s), want %v", tt.file, ok, why, tt.want)
		}
	}
}

func TestValidateReportsWhatGitHubRejects(t *testing.T) {
	t.Parallel()
	pos := config.Pos{File: "a.yaml", Line: 3, Col: 5}
	on := &config.Triggers{
		Push: &config.PushTrigger{Pos: pos, Branches: []string{"main"}, BranchesIgnore: []string{"dev"},
			Tags: []string{"!v1"}, Paths: []string{"src/["}},
		PullRequest: &config.PullRequestTrigger{Pos: pos, Paths: []string{"a"}, PathsIgnore: []string{"b"}},
	}
	errs := Validate(on)
	want := []string{
		"a.yaml:3:5: on.push: branches and branches-ignore cannot both be used",
		"a.yaml:3:5: on.push.tags: only negative patterns match nothing",
		"a.yaml:3:5: on.push.paths: pattern \"src/[\"",
		"a.yaml:3:5: on.pull_request: paths and paths-ignore cannot both be used",
	}
	if len(errs) != len(want) {
		t.Fatalf("Validate = %v, want %d errors", errs, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want prefix %q", i, errs[i], w)
		}
	}
	if errs := Validate(&anyTriggers); len(errs) != 0 {
		t.Errorf("Validate(valid) = %v", errs)
	}
}

// BenchmarkMatch matches a push of 300 files none of which pass the paths filter (the worst
// case: every file against every pattern). The baseline compiles the filters on every call,
// which is what the pattern cache saves; x-baseline is Match's time over the baseline's.
func BenchmarkMatch(b *testing.B) {
	on := &config.Triggers{Push: &config.PushTrigger{
		Branches: []string{"main", "release/**", "!release/**-alpha"},
		Paths:    []string{"src/**", "!src/gen/**", "**.go"},
	}}
	files := make([]string, 300)
	for i := range files {
		files[i] = "docs/page" + itoa(i) + ".md"
	}
	ev := branchPush("release/1.2", files...)
	var baseNs float64
	b.Run("baseline-compile-each-time", func(b *testing.B) {
		for b.Loop() {
			br, _ := pattern.CompileList(on.Push.Branches)
			paths, _ := pattern.CompileList(on.Push.Paths)
			if !br.Includes(ev.Branch) || slices.ContainsFunc(ev.ChangedFiles, paths.Includes) {
				b.Fatal("baseline matched wrongly")
			}
		}
		baseNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("Match", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if ok, _ := Match(on, ev); ok {
				b.Fatal("matched")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/baseNs, "x-baseline")
	})
}
