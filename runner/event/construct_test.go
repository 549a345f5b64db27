package event

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var cmpIgnorePayload = cmpopts.IgnoreFields(Event{}, "Payload")

var acme = Repo{Owner: "acme", Name: "widgets", CloneURL: "https://github.com/acme/widgets.git", DefaultBranch: "main"}

func TestConstructorsShapePayloadsLikeGitHub(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("x", 3600))
	inputs := map[string]string{"scope": "api"}
	hook, err := FromWebhook(acme, "abc", "main", "deploy", []byte(`{"ref":"spoofed","alert":{"level":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	empty, err := FromWebhook(acme, "abc", "", "deploy", nil)
	if err != nil {
		t.Fatal(err)
	}
	repoPayload := map[string]any{"name": "widgets", "full_name": "acme/widgets", "owner": map[string]any{"login": "acme"},
		"clone_url": "https://github.com/acme/widgets.git", "default_branch": "main", "private": false}
	tests := []struct {
		name    string
		got     *Event
		want    *Event
		payload map[string]any
	}{
		{"a schedule names its cron", Scheduled(acme, "abc", "main", "0 3 * * *", at),
			&Event{Kind: KindSchedule, Repo: acme, Ref: "refs/heads/main", Branch: "main", SHA: "abc", Cron: "0 3 * * *"},
			map[string]any{"schedule": "0 3 * * *", "ref": "refs/heads/main", "sha": "abc", "at": "2025-03-04T04:06:07Z", "repository": repoPayload}},
		{"a dispatch carries its inputs", Dispatched(acme, "abc", "main", "audit", inputs),
			&Event{Kind: KindDispatch, Repo: acme, Ref: "refs/heads/main", Branch: "main", SHA: "abc", Routine: "audit", Inputs: map[string]string{"scope": "api"}},
			map[string]any{"inputs": map[string]any{"scope": "api"}, "ref": "refs/heads/main", "sha": "abc", "routine": "audit", "repository": repoPayload}},
		{"a webhook keeps the caller's JSON apart", hook,
			&Event{Kind: KindWebhook, Repo: acme, Ref: "refs/heads/main", Branch: "main", SHA: "abc", Routine: "deploy"},
			map[string]any{"client_payload": map[string]any{"ref": "spoofed", "alert": map[string]any{"level": float64(2)}},
				"ref": "refs/heads/main", "sha": "abc", "routine": "deploy", "repository": repoPayload}},
		{"an empty webhook body is an empty object", empty,
			&Event{Kind: KindWebhook, Repo: acme, SHA: "abc", Routine: "deploy"},
			map[string]any{"client_payload": map[string]any{}, "ref": "", "sha": "abc", "routine": "deploy", "repository": repoPayload}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, tt.got, cmpIgnorePayload); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.payload, tt.got.Payload); diff != "" {
				t.Errorf("payload (-want +got):\n%s", diff)
			}
		})
	}
	inputs["scope"] = "changed"
	if tests[1].got.Inputs["scope"] != "api" {
		t.Error("Dispatched kept a reference to the caller's inputs map")
	}
	if _, err := FromWebhook(acme, "abc", "main", "deploy", []byte(`{"a":`)); err == nil {
		t.Error("FromWebhook accepted malformed JSON")
	}
}
