package githubfake

import (
	"encoding/json"
	"strings"
)

// PushPayload is a push of sha to main of acme/app, shaped as GitHub sends it, with the
// repository cloned from repoDir: what tests post to a daemon that serves a local repository.
func PushPayload(repoDir, sha string) []byte {
	b, _ := json.Marshal(map[string]any{
		"ref": "refs/heads/main", "before": strings.Repeat("0", 40), "after": sha, "created": false, "deleted": false,
		"forced": false, "commits": []any{},
		"repository": map[string]any{"id": 1, "name": "app", "full_name": "acme/app", "owner": map[string]any{"login": "acme"},
			"clone_url": "file://" + repoDir, "default_branch": "main", "private": false},
		"sender": map[string]any{"login": "octo"},
	})
	return b
}
