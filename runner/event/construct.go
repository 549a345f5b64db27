package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// Scheduled is the event a cron entry fires. Its payload is GitHub's schedule payload
// (`schedule` holds the cron) plus ref, sha, repository and the firing time.
func Scheduled(repo Repo, sha, branch, cron string, at time.Time) *Event {
	ev := &Event{Kind: KindSchedule, Repo: repo, SHA: sha, Cron: cron}
	setBranch(ev, branch)
	ev.Payload = map[string]any{
		"schedule":   cron,
		"ref":        ev.Ref,
		"sha":        sha,
		"at":         at.UTC().Format(time.RFC3339),
		"repository": repoPayload(repo),
	}
	return ev
}

// Dispatched is an API or `runner dispatch` run of one routine. Its payload is shaped like
// GitHub's workflow_dispatch payload: `inputs`, `ref`, `repository`, plus `routine`.
func Dispatched(repo Repo, sha, branch, routine string, inputs map[string]string) *Event {
	ev := &Event{Kind: KindDispatch, Repo: repo, SHA: sha, Routine: routine, Inputs: maps.Clone(inputs)}
	setBranch(ev, branch)
	in := make(map[string]any, len(inputs))
	for k, v := range inputs {
		in[k] = v
	}
	ev.Payload = map[string]any{
		"inputs":     in,
		"ref":        ev.Ref,
		"sha":        sha,
		"routine":    routine,
		"repository": repoPayload(repo),
	}
	return ev
}

// FromWebhook is an external system's (already verified) call to
// /hooks/{owner}/{repo}/{routine}. Its payload is shaped like GitHub's repository_dispatch:
// the caller's JSON, any JSON value, is `client_payload`, beside ref, sha, routine and
// repository, so the caller cannot overwrite the fields the runner sets. An empty body is an
// empty object.
func FromWebhook(repo Repo, sha, branch, routine string, payload []byte) (*Event, error) {
	var client any = map[string]any{}
	if len(bytes.TrimSpace(payload)) > 0 {
		if err := json.Unmarshal(payload, &client); err != nil {
			return nil, fmt.Errorf("webhook for routine %q: decode payload: %w", routine, err)
		}
	}
	ev := &Event{Kind: KindWebhook, Repo: repo, SHA: sha, Routine: routine}
	setBranch(ev, branch)
	ev.Payload = map[string]any{
		"client_payload": client,
		"ref":            ev.Ref,
		"sha":            sha,
		"routine":        routine,
		"repository":     repoPayload(repo),
	}
	return ev, nil
}

func setBranch(ev *Event, branch string) {
	ev.Branch = branch
	if branch != "" {
		ev.Ref = "refs/heads/" + branch
	}
}

// repoPayload is the repository object of GitHub's payloads, so `event.repository.*` reads
// the same in every kind of event.
func repoPayload(r Repo) map[string]any {
	return map[string]any{
		"name":           r.Name,
		"full_name":      r.FullName(),
		"owner":          map[string]any{"login": r.Owner},
		"clone_url":      r.CloneURL,
		"default_branch": r.DefaultBranch,
		"private":        r.Private,
	}
}
