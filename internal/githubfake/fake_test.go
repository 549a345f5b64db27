package githubfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// recordingTB captures the fake's failures so tests can assert that it fails the test.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

func do(t *testing.T, f *Fake, method, path, body string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, f.URL()+strings.TrimPrefix(path, "/"), rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestContractViolationsAreRejectedAndFailTheTest(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string // in the violation
	}{
		{"an undescribed path", "GET", "/repos/o/r/actions/runs", "", 404, "no such path"},
		{"an undescribed method", "DELETE", "/repos/o/r/check-runs/1", "", 404, "method not described"},
		{"a check run with a bogus status", "POST", "/repos/o/r/check-runs", `{"name":"a","head_sha":"abc","status":"bogus"}`, 422, "/status"},
		{"a check run without a name", "POST", "/repos/o/r/check-runs", `{"head_sha":"abc"}`, 422, "name"},
		{"a completed check run without conclusion", "POST", "/repos/o/r/check-runs", `{"name":"a","head_sha":"abc","status":"completed"}`, 422, "conclusion"},
		{"an annotation without a level", "PATCH", "/repos/o/r/check-runs/5", `{"output":{"title":"t","summary":"s","annotations":[{"path":"a","start_line":1,"end_line":1,"message":"m"}]}}`, 422, "annotation_level"},
		{"a ref with an integer sha", "POST", "/repos/o/r/git/refs", `{"ref":"refs/heads/x","sha":5}`, 422, "/sha"},
		{"a comment without a body", "POST", "/repos/o/r/issues/1/comments", `{}`, 422, "body"},
		{"a pull request list with a bad state", "GET", "/repos/o/r/pulls?state=merged", "", 422, "state"},
		{"an undescribed query parameter", "GET", "/repos/o/r/pulls?color=red", "", 422, "color"},
		{"a started_at that is not a date-time", "POST", "/repos/o/r/check-runs", `{"name":"a","head_sha":"abc","started_at":"yesterday"}`, 422, "date-time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingTB{TB: t}
			f := New(rec)
			status, _ := do(t, f, tc.method, tc.path, tc.body)
			if status != tc.status {
				t.Errorf("status = %d, want %d", status, tc.status)
			}
			v := f.Violations()
			if len(v) != 1 || !strings.Contains(v[0], tc.want) {
				t.Errorf("violations = %q, want one mentioning %q", v, tc.want)
			}
			if len(rec.errors()) != 1 {
				t.Errorf("test failures = %q, want exactly one", rec.errors())
			}
			if r := f.Requests(); len(r) != 1 || r[0].Status != tc.status {
				t.Errorf("recorded %+v, want one request answered %d", r, tc.status)
			}
		})
	}
}

func TestValidRequestsAreNotViolations(t *testing.T) {
	rec := &recordingTB{TB: t}
	f := New(rec)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/repos/o/r/check-runs", `{"name":"a","head_sha":"abc","status":"completed","conclusion":"success","completed_at":"2024-01-02T03:04:05Z"}`},
		{"PATCH", "/repos/o/r/check-runs/1001", `{"status":"in_progress"}`},
		{"GET", "/repos/o/r/commits/abc/check-runs?check_name=a&filter=all&per_page=100", ""},
		{"POST", "/app/installations/7/access_tokens", ""},
		{"GET", "/api/v3/repos/o/r", ""},
		{"GET", "/repos/o/r/git/ref/heads/feature/deep/name", ""},
	} {
		do(t, f, c.method, c.path, c.body)
	}
	if v := f.Violations(); len(v) != 0 {
		t.Errorf("violations = %q, want none", v)
	}
	if errs := rec.errors(); len(errs) != 0 {
		t.Errorf("test failures = %q, want none", errs)
	}
	reqs := f.Requests()
	if got := reqs[5]; got.Operation != "git/get-ref" || got.Params["ref"] != "heads/feature/deep/name" {
		t.Errorf("multi-segment ref: operation %q params %v", got.Operation, got.Params)
	}
	if got := reqs[4]; got.Path != "/repos/o/r" || got.Operation != "repos/get" {
		t.Errorf("GHE prefix not stripped: %+v", got)
	}
}

func TestFaultsApplyOnceInOrderAndUnusedOnesFail(t *testing.T) {
	rec := &recordingTB{TB: t}
	f := New(rec)
	f.FailNext("POST", "/repos/{owner}/{repo}/check-runs", 502, nil)
	f.FailNext("POST", "/repos/*/*/check-runs", 429, map[string]string{"Retry-After": "2"})
	f.FailNext("GET", "/repos/o/r", 500, nil) // never hit
	f.Expect("PATCH", "/repos/{owner}/{repo}/check-runs/{check_run_id}")
	body := `{"name":"a","head_sha":"abc"}`
	var got []int
	for range 3 {
		s, _ := do(t, f, "POST", "/repos/o/r/check-runs", body)
		got = append(got, s)
	}
	if fmt.Sprint(got) != "[502 429 201]" {
		t.Errorf("statuses = %v, want [502 429 201]", got)
	}
	f.Verify()
	errs := rec.errors()
	if len(errs) != 2 || !strings.Contains(strings.Join(errs, "\n"), "never triggered") || !strings.Contains(strings.Join(errs, "\n"), "expected a request PATCH") {
		t.Errorf("Verify failures = %q, want the unused fault and the unmet expectation", errs)
	}
}

func TestCheckRunListFiltersAndLatest(t *testing.T) {
	f := New(t)
	f.SetRef("o", "r", "heads/main", "sha1")
	for _, b := range []string{
		`{"name":"agents/a","head_sha":"sha1","external_id":"run-1"}`,
		`{"name":"agents/a","head_sha":"sha1","external_id":"run-2"}`,
		`{"name":"agents/b","head_sha":"sha1"}`,
		`{"name":"agents/a","head_sha":"other"}`,
	} {
		if s, body := do(t, f, "POST", "/repos/o/r/check-runs", b); s != 201 {
			t.Fatalf("create: %d %s", s, body)
		}
	}
	tests := []struct {
		query string
		want  []string // external ids, newest first
	}{
		{"check_name=agents/a", []string{"run-2"}},
		{"check_name=agents/a&filter=all", []string{"run-2", "run-1"}},
		{"filter=all", []string{"", "run-2", "run-1"}},
	}
	for _, ref := range []string{"sha1", "main"} {
		for _, tc := range tests {
			s, body := do(t, f, "GET", "/repos/o/r/commits/"+ref+"/check-runs?"+tc.query, "")
			var out struct {
				Total int `json:"total_count"`
				Runs  []struct {
					ExternalID string `json:"external_id"`
				} `json:"check_runs"`
			}
			if err := json.Unmarshal(body, &out); err != nil || s != 200 {
				t.Fatalf("list %s: %d %s", tc.query, s, body)
			}
			var got []string
			for _, r := range out.Runs {
				got = append(got, r.ExternalID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || out.Total != len(tc.want) {
				t.Errorf("ref %s ?%s: got %q (total %d), want %q", ref, tc.query, got, out.Total, tc.want)
			}
		}
	}
}

func TestContentsServesFilesAndDirectories(t *testing.T) {
	f := New(t)
	f.SetFile("o", "r", "", ".agents/review.yaml", []byte("name: review\n"))
	f.SetFile("o", "r", "", ".agents/sub/x.yaml", []byte("x"))
	f.SetFile("o", "r", "feature", ".agents/review.yaml", []byte("name: other\n"))

	s, body := do(t, f, "GET", "/repos/o/r/contents/.agents/review.yaml", "")
	if s != 200 || !bytes.Contains(body, []byte(`"content":"bmFtZTogcmV2aWV3Cg=="`)) {
		t.Errorf("file: %d %s", s, body)
	}
	s, body = do(t, f, "GET", "/repos/o/r/contents/.agents/review.yaml?ref=feature", "")
	if s != 200 || !bytes.Contains(body, []byte(`"content":"bmFtZTogb3RoZXIK"`)) {
		t.Errorf("file at ref: %d %s", s, body)
	}
	s, body = do(t, f, "GET", "/repos/o/r/contents/.agents", "")
	var list []struct{ Type, Path string }
	if err := json.Unmarshal(body, &list); err != nil || s != 200 || len(list) != 2 ||
		list[0].Path != ".agents/review.yaml" || list[1].Type != "dir" {
		t.Errorf("dir: %d %s", s, body)
	}
	if s, _ = do(t, f, "GET", "/repos/o/r/contents/missing.txt", ""); s != 404 {
		t.Errorf("missing file: %d, want 404", s)
	}
}
