package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/server"
)

// push25KB is the real push payload grown to 25 KB the way large pushes grow: more commits.
func push25KB(b testing.TB) []byte {
	b.Helper()
	var body []byte
	for n := 1; len(body) < 25*1024; n++ {
		body = withJSON(b, payload(b, "push.json"), func(m map[string]any) {
			c := m["commits"].([]any)[0].(map[string]any)
			var commits []any
			for i := range n {
				cp := map[string]any{}
				for k, v := range c {
					cp[k] = v
				}
				cp["id"] = fmt.Sprintf("%040x", i)
				cp["message"] = fmt.Sprintf("Commit %d: fix the flaky tests in the scheduler", i)
				cp["modified"] = []any{fmt.Sprintf("src/pkg%d/file_%d.go", i%7, i)}
				commits = append(commits, cp)
			}
			m["commits"] = commits
		})
	}
	return body
}

// BenchmarkWebhook25KB measures one delivery through the HTTP handler (httptest, no network):
// signature check, body read, routing parse, and an in-memory enqueue. The baseline measured in
// the same run is the signature check alone (github.VerifySignature), the floor of any intake.
// Goal: ≥ 5,000 deliveries/s on one core (-cpu 1).
func BenchmarkWebhook25KB(b *testing.B) {
	body := push25KB(b)
	q := newMemQueue()
	h := newServer(b, q)
	sig := github.Sign(secret, body)

	const baseN = 2000
	t0 := time.Now()
	for range baseN {
		if err := github.VerifySignature(secret, body, sig); err != nil {
			b.Fatal(err)
		}
	}
	base := float64(time.Since(t0).Nanoseconds()) / baseN

	rd := bytes.NewReader(body)
	r := httptest.NewRequest(http.MethodPost, server.WebhookPath, rd)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-GitHub-Event", "push")
	r.Header.Set(github.SignatureHeader, sig)
	w := &discardWriter{h: http.Header{}}
	b.SetBytes(int64(len(body)))
	i := 0
	b.ResetTimer()
	for b.Loop() {
		i++
		rd.Reset(body)
		r.Body = readCloser{rd}
		r.Header.Set("X-GitHub-Delivery", fmt.Sprint("d-", i))
		w.code = 0
		h.ServeHTTP(w, r)
		if w.code != http.StatusAccepted {
			b.Fatalf("status %d", w.code)
		}
		if i%4096 == 0 {
			q.take() // keep memory flat; the queue is not what is measured
		}
	}
	per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(1e9/per, "deliveries/s")
	b.ReportMetric(per/base, "x_verify")
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
