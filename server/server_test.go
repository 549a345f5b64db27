package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/internal/fixture"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/server"
)

var secret = []byte("It's a Secret to Everybody")

func payload(t testing.TB, name string) []byte {
	t.Helper()
	return fixture.Webhook(t, name)
}

func newServer(t testing.TB, q server.Queue) http.Handler {
	t.Helper()
	s, err := server.New(server.Config{WebhookSecret: secret, Queue: q, MaxBodyBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return s.Handler()
}

// delivery builds a signed request as GitHub sends it.
func delivery(kind, id string, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, server.WebhookPath, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-GitHub-Event", kind)
	r.Header.Set("X-GitHub-Delivery", id)
	r.Header.Set(github.SignatureHeader, github.Sign(secret, body))
	return r
}

func serve(h http.Handler, r *http.Request) (int, string) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestEveryRealPayloadIsAcceptedAndRouted(t *testing.T) {
	commentCmd := withJSON(t, payload(t, "issue_comment.created.json"), func(m map[string]any) {
		m["comment"].(map[string]any)["body"] = "/agents run review"
		m["issue"].(map[string]any)["pull_request"] = map[string]any{"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"}
	})
	tests := []struct {
		file   string
		body   []byte // overrides the file's content
		kind   string
		code   int
		status string // queued, ignored, pong
	}{
		{file: "push.json", kind: "push", code: 202, status: "queued"},
		{file: "push.tag-created.json", kind: "push", code: 202, status: "queued"},
		{file: "push.tag-deleted.json", kind: "push", code: 202, status: "ignored"},
		{file: "pull_request.opened.json", kind: "pull_request", code: 202, status: "queued"},
		{file: "pull_request.synchronize.json", kind: "pull_request", code: 202, status: "queued"},
		{file: "pull_request.reopened.json", kind: "pull_request", code: 202, status: "queued"},
		{file: "pull_request.closed.json", kind: "pull_request", code: 202, status: "queued"},
		{file: "pull_request.labeled.json", kind: "pull_request", code: 202, status: "queued"},
		{file: "issue_comment.created.json", kind: "issue_comment", code: 202, status: "ignored"},
		{file: "issue_comment.created.json (command on a PR)", body: commentCmd, kind: "issue_comment", code: 202, status: "queued"},
		{file: "check_run.rerequested.json", kind: "check_run", code: 202, status: "queued"},
		{file: "check_suite.requested.json", kind: "check_suite", code: 202, status: "ignored"},
		{file: "check_suite.rerequested.json", kind: "check_suite", code: 202, status: "queued"},
		{file: "installation.created.json", kind: "installation", code: 202, status: "queued"},
		{file: "ping.json", kind: "ping", code: 200, status: "pong"},
		{file: "push.json (an event we do not handle)", body: payload(t, "push.json"), kind: "workflow_run", code: 202, status: "ignored"},
	}
	for i, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			body := tc.body
			if body == nil {
				body = payload(t, tc.file)
			}
			q := newMemQueue()
			h := newServer(t, q)
			id := fmt.Sprintf("d-%d", i)
			code, resp := serve(h, delivery(tc.kind, id, body))
			if code != tc.code || !strings.Contains(resp, `"status":"`+tc.status+`"`) || !strings.Contains(resp, `"delivery":"`+id+`"`) {
				t.Fatalf("answer = %d %s, want %d with status %s", code, resp, tc.code, tc.status)
			}
			got := q.take()
			if tc.status != "queued" {
				if len(got) != 0 {
					t.Fatalf("queued %d deliveries for a delivery answered %s", len(got), tc.status)
				}
				return
			}
			if len(got) != 1 || got[0].ID != id || got[0].Event != tc.kind || !bytes.Equal(got[0].Body, body) || got[0].ReceivedAt.IsZero() {
				t.Fatalf("queued %+v, want the delivery as received", got)
			}
			// What the worker will do with it: the payload normalizes to an event of its kind.
			ev, err := event.FromGitHub(got[0].Event, got[0].ID, got[0].Body)
			if err != nil || ev.Kind != tc.kind || ev.DeliveryID != id {
				t.Fatalf("queued payload does not normalize: %v %+v", err, ev)
			}
		})
	}
}

func withJSON(t testing.TB, body []byte, edit func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRefusedDeliveriesQueueNothing(t *testing.T) {
	push := payload(t, "push.json")
	tests := []struct {
		name string
		req  func() *http.Request
		code int
	}{
		{"a missing signature", func() *http.Request {
			r := delivery("push", "d", push)
			r.Header.Del(github.SignatureHeader)
			return r
		}, 401},
		{"a sha1 signature alone", func() *http.Request {
			r := delivery("push", "d", push)
			r.Header.Del(github.SignatureHeader)
			r.Header.Set("X-Hub-Signature", "sha1=0123456789012345678901234567890123456789")
			return r
		}, 401},
		{"a signature made with another secret", func() *http.Request {
			r := delivery("push", "d", push)
			r.Header.Set(github.SignatureHeader, github.Sign([]byte("wrong"), push))
			return r
		}, 401},
		{"a tampered body", func() *http.Request {
			r := delivery("push", "d", push)
			r.Body = io.NopCloser(bytes.NewReader(bytes.Replace(push, []byte("master"), []byte("main!!"), 1)))
			return r
		}, 401},
		{"a body over the cap", func() *http.Request {
			return delivery("push", "d", append(bytes.Repeat([]byte(" "), 1<<20), push...))
		}, 413},
		{"a body over the cap without Content-Length", func() *http.Request {
			big := append(bytes.Repeat([]byte(" "), 1<<20), push...)
			r := delivery("push", "d", big)
			r.ContentLength = -1
			return r
		}, 413},
		{"a signed body that is not JSON", func() *http.Request { return delivery("push", "d", []byte("{not json}")) }, 400},
		{"a signed body that is JSON but not an object", func() *http.Request { return delivery("push", "d", []byte(`["a"]`)) }, 400},
		{"no event header", func() *http.Request {
			r := delivery("push", "d", push)
			r.Header.Del("X-GitHub-Event")
			return r
		}, 400},
		{"no delivery id", func() *http.Request {
			r := delivery("push", "d", push)
			r.Header.Del("X-GitHub-Delivery")
			return r
		}, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newMemQueue()
			code, body := serve(newServer(t, q), tc.req())
			if code != tc.code {
				t.Errorf("status = %d (%s), want %d", code, body, tc.code)
			}
			if n := q.len(); n != 0 {
				t.Errorf("queued %d deliveries, want none", n)
			}
		})
	}
}

func TestWrongMethodAndPath(t *testing.T) {
	h := newServer(t, newMemQueue())
	if code, _ := serve(h, httptest.NewRequest(http.MethodGet, server.WebhookPath, nil)); code != http.StatusMethodNotAllowed {
		t.Errorf("GET %s = %d, want 405", server.WebhookPath, code)
	}
	if code, _ := serve(h, httptest.NewRequest(http.MethodPost, "/webhooks/gitlab", nil)); code != http.StatusNotFound {
		t.Errorf("POST /webhooks/gitlab = %d, want 404", code)
	}
}

func TestDuplicateDeliveries(t *testing.T) {
	body := payload(t, "pull_request.opened.json")
	t.Run("in parallel, one is queued", func(t *testing.T) {
		q := newMemQueue()
		h := newServer(t, q)
		var wg sync.WaitGroup
		codes := make([]int, 16)
		for i := range codes {
			wg.Go(func() { codes[i], _ = serve(h, delivery("pull_request", "same-id", body)) })
		}
		wg.Wait()
		for _, c := range codes {
			if c != http.StatusAccepted {
				t.Errorf("codes = %v, want all 202", codes)
				break
			}
		}
		if got := q.take(); len(got) != 1 {
			t.Errorf("queued %d, want 1", len(got))
		}
	})
	t.Run("a redelivery of a processed delivery is acknowledged, not queued", func(t *testing.T) {
		q := newMemQueue()
		h := newServer(t, q)
		serve(h, delivery("pull_request", "id-1", body))
		q.finish("id-1", false)
		code, resp := serve(h, delivery("pull_request", "id-1", body))
		if code != 202 || !strings.Contains(resp, `"duplicate"`) || len(q.take()) != 1 {
			t.Errorf("redelivery: %d %s", code, resp)
		}
	})
	t.Run("a redelivery of a failed delivery is queued again", func(t *testing.T) {
		q := newMemQueue()
		h := newServer(t, q)
		serve(h, delivery("pull_request", "id-2", body))
		q.take()
		q.finish("id-2", true)
		code, resp := serve(h, delivery("pull_request", "id-2", body))
		if code != 202 || !strings.Contains(resp, `"queued"`) || len(q.take()) != 1 {
			t.Errorf("redelivery after failure: %d %s", code, resp)
		}
	})
}

func TestQueueFailureAnswers503(t *testing.T) {
	q := newMemQueue()
	q.err = errors.New("disk full")
	code, body := serve(newServer(t, q), delivery("push", "d", payload(t, "push.json")))
	if code != http.StatusServiceUnavailable || strings.Contains(body, "disk full") {
		t.Errorf("answer = %d %q, want 503 without internals", code, body)
	}
}

func TestHealth(t *testing.T) {
	var sick error
	s, err := server.New(server.Config{WebhookSecret: secret, Queue: newMemQueue(),
		Health: func(context.Context) error { return sick }})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := serve(s, httptest.NewRequest(http.MethodGet, "/healthz", nil)); code != 200 || body != "ok\n" {
		t.Errorf("healthy: %d %q", code, body)
	}
	sick = errors.New("database unreachable")
	if code, _ := serve(s, httptest.NewRequest(http.MethodGet, "/healthz", nil)); code != http.StatusServiceUnavailable {
		t.Errorf("sick: %d, want 503", code)
	}
}

func TestNewRefusesAnIncompleteConfig(t *testing.T) {
	if _, err := server.New(server.Config{WebhookSecret: secret}); err == nil || !strings.Contains(err.Error(), "queue") {
		t.Errorf("no queue: %v", err)
	}
	if _, err := server.New(server.Config{Queue: newMemQueue()}); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Errorf("no secret: %v", err)
	}
}
