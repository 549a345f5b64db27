package event

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/internal/fixture"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// readPayload reads a real GitHub payload (octokit/webhooks examples) from testdata/github.
func readPayload(t testing.TB, name string) []byte {
	t.Helper()
	return fixture.Webhook(t, name)
}

// kindOf is the X-GitHub-Event of a payload file named <event>[.<variant>].json.
func kindOf(file string) string {
	k, _, _ := strings.Cut(strings.TrimSuffix(file, ".json"), ".")
	return k
}

var helloWorld = Repo{Owner: "Codertocat", Name: "Hello-World", CloneURL: "https://github.com/Codertocat/Hello-World.git", DefaultBranch: "master"}

func TestFromGitHubNormalizesRealPayloads(t *testing.T) {
	t.Parallel()
	pr := func(action string) *Event {
		return &Event{
			Kind: KindPullRequest, Action: action, Repo: helloWorld,
			Ref: "refs/pull/2/head", Branch: "master", SHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
			PullRequest: &PullRequest{
				Number: 2, Title: "Update the README with new information.",
				Body:    "This is a pretty simple change that we need to pull into master.",
				Author:  "Codertocat",
				HeadRef: "changes", HeadSHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", HeadRepo: "Codertocat/Hello-World",
				BaseRef: "master", BaseSHA: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
				Labels: []string{"bug"},
			},
			Sender: "Codertocat", InstallationID: 1, DeliveryID: "d-1",
		}
	}
	synchronize := pr("synchronize")
	synchronize.Before = "e5e85ec4b5e8ce8c6fd2f9a3b8a9e0aa3f6bd8e9"
	tests := []struct {
		file string
		want *Event
	}{
		{"push.json", &Event{
			Kind: KindPush, Repo: helloWorld, Ref: "refs/heads/master", Branch: "master",
			SHA: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", Before: zeroSHA, Created: true,
			ChangedFiles: []string{"README.md"}, Sender: "Codertocat", InstallationID: 1, DeliveryID: "d-1",
		}},
		{"push.tag-created.json", &Event{
			Kind: KindPush, Repo: Repo{Owner: "Codertocat", Name: "Hello-World", CloneURL: "https://octocoders.github.io/Codertocat/Hello-World.git", DefaultBranch: "master"},
			Ref: "refs/tags/simple-tag", Tag: "simple-tag",
			SHA: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", Before: zeroSHA, Created: true,
			Sender: "Codertocat", InstallationID: 5, DeliveryID: "d-1",
		}},
		{"push.tag-deleted.json", &Event{
			Kind: KindPush, Repo: helloWorld, Ref: "refs/tags/simple-tag", Tag: "simple-tag",
			SHA: zeroSHA, Before: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", Deleted: true,
			Sender: "Codertocat", DeliveryID: "d-1",
		}},
		{"pull_request.opened.json", pr("opened")},
		{"pull_request.reopened.json", pr("reopened")},
		{"pull_request.labeled.json", pr("labeled")},
		{"pull_request.synchronize.json", synchronize},
		{"pull_request.closed.json", pr("closed")},
		{"issue_comment.created.json", &Event{
			Kind: KindIssueComment, Action: "created", Repo: helloWorld,
			Comment: &Comment{ID: 492700400, Body: "You are totally right! I'll get this fixed right away.",
				Author: "Codertocat", AuthorAssociation: "OWNER", IssueNumber: 1},
			Sender: "Codertocat", DeliveryID: "d-1",
		}},
		{"check_run.rerequested.json", &Event{
			Kind: KindCheckRun, Action: "rerequested",
			Repo: Repo{Owner: "github", Name: "hello-world", CloneURL: "http://github.com/github/hello-world.git", DefaultBranch: "master"},
			Ref:  "refs/heads/master", Branch: "master", SHA: "d6fde92930d4715a2b49857d24b940956b26d2d3",
			Sender: "octocat", InstallationID: 1, DeliveryID: "d-1",
		}},
		{"check_suite.requested.json", &Event{
			Kind: KindCheckSuite, Action: "requested", Repo: helloWorld,
			Ref: "refs/heads/master", Branch: "master", SHA: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
			Before: "7aa0d0d0dd23d6fb2a7b0a19e6dd6c2c3b5e5c68",
			Sender: "Codertocat", InstallationID: 957387, DeliveryID: "d-1",
		}},
		{"check_suite.rerequested.json", &Event{
			Kind: KindCheckSuite, Action: "rerequested", Repo: helloWorld,
			Ref: "refs/heads/changes", Branch: "changes", SHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
			Before: "7aa0d0d0dd23d6fb2a7b0a19e6dd6c2c3b5e5c68",
			Sender: "octocoders-linter[bot]", InstallationID: 957387, DeliveryID: "d-1",
		}},
		{"installation.created.json", &Event{
			Kind: KindInstallation, Action: "created", Repo: Repo{Owner: "Codertocat"},
			Sender: "Codertocat", InstallationID: 957387, DeliveryID: "d-1",
		}},
		{"ping.json", &Event{
			Kind: KindPing, Repo: Repo{Owner: "Octocoders", Name: "Hello-World", CloneURL: "https://github.com/Octocoders/Hello-World.git", DefaultBranch: "master"},
			Sender: "Codertocat", DeliveryID: "d-1",
		}},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			payload := readPayload(t, tt.file)
			got, err := FromGitHub(kindOf(tt.file), "d-1", payload)
			if err != nil {
				t.Fatalf("FromGitHub: %v", err)
			}
			// Values read from the payload where the fixture has them; the rest is asserted above.
			var raw map[string]any
			if err := json.Unmarshal(payload, &raw); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(raw, got.Payload); diff != "" {
				t.Errorf("Payload is not the raw JSON (-want +got):\n%s", diff)
			}
			fixBefore(t, tt.want, raw)
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Event{}, "Payload")); diff != "" {
				t.Errorf("FromGitHub(%s) mismatch (-want +got):\n%s", tt.file, diff)
			}
		})
	}
	t.Run("every shared payload is covered", func(t *testing.T) {
		for _, f := range fixture.Webhooks(t) {
			if !covered[filepath.Base(f)] {
				t.Errorf("%s has no expectation in this test", filepath.Base(f))
			}
		}
	})
}

// fixBefore fills the `before` SHAs of synchronize and check-suite payloads from the
// payload itself, checking they are real 40-hex SHAs, so the table does not hard-code them twice.
func fixBefore(t *testing.T, want *Event, raw map[string]any) {
	t.Helper()
	var before any
	switch want.Kind {
	case KindPullRequest:
		before = raw["before"]
	case KindCheckSuite:
		before = raw["check_suite"].(map[string]any)["before"]
	default:
		return
	}
	s, _ := before.(string)
	if want.Before != "" || s != "" {
		if len(s) != 40 {
			t.Fatalf("payload before = %q, want a SHA", s)
		}
		want.Before = s
	}
}

func TestFromGitHubReadsVariantsThePayloadsDoNotShow(t *testing.T) {
	t.Parallel()
	edit := func(file string, f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(readPayload(t, file), &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	commits := func(n int, files ...string) []any {
		var cs []any
		for i := range n {
			cs = append(cs, map[string]any{"added": []any{}, "removed": []any{}, "modified": []any{files[i%len(files)]}})
		}
		return cs
	}
	tests := []struct {
		name  string
		kind  string
		body  []byte
		check func(t *testing.T, ev *Event)
	}{
		{"a pull request from a fork is marked as a fork", KindPullRequest,
			edit("pull_request.opened.json", func(m map[string]any) {
				m["pull_request"].(map[string]any)["head"].(map[string]any)["repo"].(map[string]any)["full_name"] = "mallory/Hello-World"
			}),
			func(t *testing.T, ev *Event) {
				if !ev.PullRequest.Fork || ev.PullRequest.HeadRepo != "mallory/Hello-World" {
					t.Errorf("Fork=%v HeadRepo=%q, want a fork from mallory/Hello-World", ev.PullRequest.Fork, ev.PullRequest.HeadRepo)
				}
			}},
		{"a pull request whose head repository is gone counts as a fork", KindPullRequest,
			edit("pull_request.opened.json", func(m map[string]any) {
				m["pull_request"].(map[string]any)["head"].(map[string]any)["repo"] = nil
			}),
			func(t *testing.T, ev *Event) {
				if !ev.PullRequest.Fork {
					t.Error("Fork = false, want true")
				}
			}},
		{"a merged draft pull request keeps both flags", KindPullRequest,
			edit("pull_request.closed.json", func(m map[string]any) {
				p := m["pull_request"].(map[string]any)
				p["merged"], p["draft"], p["body"] = true, true, nil
			}),
			func(t *testing.T, ev *Event) {
				if !ev.PullRequest.Merged || !ev.PullRequest.Draft || ev.PullRequest.Body != "" {
					t.Errorf("PullRequest = %+v, want merged draft with empty body", ev.PullRequest)
				}
			}},
		{"a command comment on a pull request names the routine", KindIssueComment,
			edit("issue_comment.created.json", func(m map[string]any) {
				m["comment"].(map[string]any)["body"] = "  /agents run pr-review\r\nplease"
				m["issue"].(map[string]any)["pull_request"] = map[string]any{"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"}
			}),
			func(t *testing.T, ev *Event) {
				if ev.Routine != "pr-review" || !ev.Comment.OnPullRequest || ev.PullRequest != nil {
					t.Errorf("Routine=%q OnPullRequest=%v PullRequest=%v, want pr-review on a PR and no guessed PR", ev.Routine, ev.Comment.OnPullRequest, ev.PullRequest)
				}
			}},
		{"a re-requested agents check run names its routine", KindCheckRun,
			edit("check_run.rerequested.json", func(m map[string]any) {
				m["check_run"].(map[string]any)["name"] = "agents/nightly"
			}),
			func(t *testing.T, ev *Event) {
				if ev.Routine != "nightly" {
					t.Errorf("Routine = %q, want nightly", ev.Routine)
				}
			}},
		{"the external id wins over the check run name", KindCheckRun,
			edit("check_run.rerequested.json", func(m map[string]any) {
				m["check_run"].(map[string]any)["name"] = "agents/nightly"
				m["check_run"].(map[string]any)["external_id"] = "agents/audit/run-42"
			}),
			func(t *testing.T, ev *Event) {
				if ev.Routine != "audit" {
					t.Errorf("Routine = %q, want audit", ev.Routine)
				}
			}},
		{"a push lists the union of its commits' files once each", KindPush,
			edit("push.json", func(m map[string]any) {
				m["commits"] = []any{
					map[string]any{"added": []any{"b.go"}, "removed": []any{"old.go"}, "modified": []any{"a.go"}},
					map[string]any{"added": []any{}, "removed": []any{"b.go"}, "modified": []any{"a.go", "docs/x.md"}},
				}
			}),
			func(t *testing.T, ev *Event) {
				if diff := cmp.Diff([]string{"a.go", "b.go", "docs/x.md", "old.go"}, ev.ChangedFiles); diff != "" {
					t.Errorf("ChangedFiles (-want +got):\n%s", diff)
				}
			}},
		{"a push without a commits list has unknown files", KindPush,
			edit("push.json", func(m map[string]any) { delete(m, "commits") }),
			func(t *testing.T, ev *Event) {
				if ev.ChangedFiles != nil {
					t.Errorf("ChangedFiles = %q, want nil", ev.ChangedFiles)
				}
			}},
		{"a push at GitHub's commit cap has unknown files", KindPush,
			edit("push.json", func(m map[string]any) { m["commits"] = commits(2048, "a.go") }),
			func(t *testing.T, ev *Event) {
				if ev.ChangedFiles != nil {
					t.Errorf("ChangedFiles has %d files, want nil", len(ev.ChangedFiles))
				}
			}},
		{"a push touching more than 2048 files has unknown files", KindPush,
			edit("push.json", func(m map[string]any) {
				var files []any
				for i := range 2049 {
					files = append(files, "f"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+"/"+itoa(i))
				}
				m["commits"] = []any{map[string]any{"added": files}}
			}),
			func(t *testing.T, ev *Event) {
				if ev.ChangedFiles != nil {
					t.Errorf("ChangedFiles has %d files, want nil", len(ev.ChangedFiles))
				}
			}},
		{"a branch deletion is marked deleted", KindPush,
			edit("push.json", func(m map[string]any) {
				m["deleted"], m["created"], m["after"], m["commits"] = true, false, zeroSHA, []any{}
			}),
			func(t *testing.T, ev *Event) {
				if !ev.Deleted || ev.Branch != "master" || ev.ChangedFiles != nil {
					t.Errorf("Deleted=%v Branch=%q ChangedFiles=%q", ev.Deleted, ev.Branch, ev.ChangedFiles)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := FromGitHub(tt.kind, "", tt.body)
			if err != nil {
				t.Fatalf("FromGitHub: %v", err)
			}
			tt.check(t, ev)
		})
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestFromGitHubRejectsBadPayloadsClearly(t *testing.T) {
	t.Parallel()
	drop := func(file string, path ...string) []byte {
		var m map[string]any
		if err := json.Unmarshal(readPayload(t, file), &m); err != nil {
			t.Fatal(err)
		}
		inner := m
		for _, p := range path[:len(path)-1] {
			inner = inner[p].(map[string]any)
		}
		delete(inner, path[len(path)-1])
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name string
		kind string
		body []byte
		want string
	}{
		{"an empty body", KindPush, nil, "github push delivery d-9: empty payload"},
		{"truncated JSON", KindPush, []byte(`{"ref": "refs/heads/main"`), "decode payload"},
		{"a JSON array", KindPush, []byte(`[1,2]`), "decode payload"},
		{"JSON null", KindPush, []byte(`null`), "not a JSON object"},
		{"a string where an object belongs", KindPush, []byte(`{"repository": "x"}`), "decode push payload"},
		{"a push without after", KindPush, drop("push.json", "after"), `no "after"`},
		{"a push without ref", KindPush, drop("push.json", "ref"), `no "ref"`},
		{"a push without repository", KindPush, drop("push.json", "repository"), `no "repository"`},
		{"a repository without a name", KindPush, []byte(`{"ref":"refs/heads/main","after":"abc","repository":{"owner":{"login":"o"}}}`), `no "repository.full_name"`},
		{"a pull request without its pull_request", KindPullRequest, drop("pull_request.opened.json", "pull_request"), `no "pull_request"`},
		{"a pull request without a head", KindPullRequest, drop("pull_request.opened.json", "pull_request", "head"), `no "pull_request.head"`},
		{"a pull request without an action", KindPullRequest, drop("pull_request.opened.json", "action"), `no "action"`},
		{"a comment without its comment", KindIssueComment, drop("issue_comment.created.json", "comment"), `no "comment.id"`},
		{"a check run without a head SHA", KindCheckRun, drop("check_run.rerequested.json", "check_run", "head_sha"), `no "check_run.head_sha"`},
		{"a check suite without a head SHA", KindCheckSuite, drop("check_suite.requested.json", "check_suite", "head_sha"), `no "check_suite.head_sha"`},
		{"an installation without an installation", KindInstallation, drop("installation.created.json", "installation"), `no "installation.id"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := FromGitHub(tt.kind, "d-9", tt.body)
			if err == nil {
				t.Fatalf("FromGitHub = %+v, want an error", ev)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "d-9") {
				t.Errorf("error %q should mention %q and the delivery id", err, tt.want)
			}
		})
	}
}

func TestFromGitHubSetsUnsupportedEventsApart(t *testing.T) {
	t.Parallel()
	_, err := FromGitHub("star", "d-1", []byte(`{}`))
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("err = %v, want ErrUnsupported", err)
	}
	_, err = FromGitHub(KindPush, "d-1", []byte(`{`))
	if errors.Is(err, ErrUnsupported) {
		t.Errorf("malformed push reported as unsupported: %v", err)
	}
}

func TestRoutineFromCheckRunOnlyTrustsAgentsChecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, check, external, want string
	}{
		{"an agents check names its routine", "agents/lint", "", "lint"},
		{"someone else's check names none", "ci/build", "", ""},
		{"a nested name is not a routine", "agents/a/b", "", ""},
		{"an external id with a run id", "whatever", "agents/lint/123", "lint"},
		{"a foreign external id falls back to the name", "agents/lint", "run-9", "lint"},
		{"a routine name with forbidden characters", "agents/a b", "", ""},
	}
	for _, tt := range tests {
		if got := RoutineFromCheckRun(tt.check, tt.external); got != tt.want {
			t.Errorf("%s: RoutineFromCheckRun(%q, %q) = %q, want %q", tt.name, tt.check, tt.external, got, tt.want)
		}
	}
	if CheckRunName("lint") != "agents/lint" || RoutineFromCheckRun(CheckRunName("x.y_z-1"), "") != "x.y_z-1" {
		t.Error("CheckRunName and RoutineFromCheckRun do not round-trip")
	}
}

func FuzzFromGitHub(f *testing.F) {
	// The seed corpus in testdata/fuzz/FuzzFromGitHub holds every shared payload; these add the kinds.
	for _, file := range fixture.Webhooks(f) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(kindOf(filepath.Base(file)), b)
	}
	f.Fuzz(func(t *testing.T, kind string, payload []byte) {
		ev, err := FromGitHub(kind, "fuzz", payload)
		if err != nil {
			if ev != nil {
				t.Fatal("an event with an error")
			}
			return
		}
		if ev.Kind != kind {
			t.Fatalf("Kind = %q, want %q", ev.Kind, kind)
		}
		if ev.Payload == nil {
			t.Fatal("nil Payload on success")
		}
		Match(&anyTriggers, ev)
	})
}

// BenchmarkFromGitHub normalizes real payloads. The baseline is decoding the same bytes into a
// map, which FromGitHub must do anyway for Payload; x-unmarshal is FromGitHub's time over it.
func BenchmarkFromGitHub(b *testing.B) {
	for _, file := range []string{"push.json", "pull_request.opened.json"} {
		payload := readPayload(b, file)
		var baseNs float64
		b.Run(file+"/baseline-unmarshal", func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				var m map[string]any
				if err := json.Unmarshal(payload, &m); err != nil {
					b.Fatal(err)
				}
			}
			baseNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
		b.Run(file+"/FromGitHub", func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := FromGitHub(kindOf(file), "d", payload); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/baseNs, "x-unmarshal")
		})
	}
}
