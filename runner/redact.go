package runner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/agentrunner/agentrunner/runner/result"
	"github.com/agentrunner/agentrunner/sandbox"
)

// redactor keeps the secret values the runner holds out of everything a run stores or
// publishes: job reports, outputs, findings, errors and final messages are masked as logs are
// (sandbox.MaskString), and changes that contain a value are refused. It masks every secret
// of the run, not only a job's own: a value the proxy adds to requests can come back in a
// response, and none of them may reach a check run, a pull request or a dependent's prompt.
type redactor struct {
	names  []string          // sorted, so the secret an error names does not depend on map order
	values map[string]string // name → value, without empty values
	list   []string
}

func newRedactor(secrets map[string]string) *redactor {
	r := &redactor{values: map[string]string{}}
	for name, v := range secrets {
		if v == "" {
			continue
		}
		r.names = append(r.names, name)
		r.values[name] = v
		r.list = append(r.list, v)
	}
	sort.Strings(r.names)
	return r
}

func (r *redactor) string(s string) string { return sandbox.MaskString(s, r.list) }

// secretIn names a secret whose value occurs in b, or returns "".
func (r *redactor) secretIn(b []byte) string {
	for _, name := range r.names {
		if bytes.Contains(b, []byte(r.values[name])) {
			return name
		}
	}
	return ""
}

// job masks what a job's result says in words. Its changes are checked where they are
// collected (refuseSecretChanges), before they are written anywhere.
func (r *redactor) job(j *result.Job) {
	if len(r.list) == 0 {
		return
	}
	j.Error = r.string(j.Error)
	j.Report = r.string(j.Report)
	j.Final = r.string(j.Final)
	j.LogTail = r.string(j.LogTail)
	if j.Outputs != nil {
		j.Outputs = r.value(j.Outputs).(map[string]any)
	}
	for i := range j.Findings {
		f := &j.Findings[i]
		f.Path, f.Level, f.Message, f.Title = r.string(f.Path), r.string(f.Level), r.string(f.Message), r.string(f.Title)
	}
}

// value masks a decoded JSON value: strings and keys are masked in place; a number or boolean
// whose text is a secret value becomes the mask.
func (r *redactor) value(v any) any {
	switch v := v.(type) {
	case string:
		return r.string(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[r.string(k)] = r.value(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = r.value(x)
		}
		return out
	case nil:
		return nil
	default:
		b, err := json.Marshal(v)
		if err != nil || r.secretIn(b) != "" {
			return sandbox.Mask
		}
		return v
	}
}

// refuseSecretChangesFile is refuseSecretChanges of a patch on disk. The patch was cut off at
// its job's limit when it was collected, so reading it whole is bounded; with no secrets it is
// not read at all.
func (r *redactor) refuseSecretChangesFile(path string) (string, error) {
	if path == "" || len(r.names) == 0 {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return r.refuseSecretChanges(b), nil
}

// refuseSecretChanges reports why a job's changes must not be kept, or "". A patch is refused
// whole rather than masked: a masked patch would change the agent's files behind its back (a
// config file with "***" in it) and no longer match the blobs it names, and the pull request
// pushes a commit built from it. Refusing says plainly what happened.
func (r *redactor) refuseSecretChanges(patch []byte) string {
	name := r.secretIn(patch)
	if name == "" && len(r.names) > 0 {
		binaryHunks(patch, func(hunk io.Reader) bool {
			v, ok := streamHolds(hunk, r.list)
			for n, value := range r.values {
				if ok && value == v && (name == "" || n < name) {
					name = n
				}
			}
			return !ok
		})
	}
	if name == "" {
		return ""
	}
	return fmt.Sprintf("changes contain a secret value (the value of %s): they were dropped so that it cannot reach a commit or a pull request; keep the agent from writing secrets into the workspace", name)
}
