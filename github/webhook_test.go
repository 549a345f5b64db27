package github_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/internal/fixture"
)

// GitHub's published test vector ("Validating webhook deliveries", docs.github.com).
const (
	vectorSecret  = "It's a Secret to Everybody"
	vectorPayload = "Hello, World!"
	vectorSig     = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

func TestVerifySignature(t *testing.T) {
	tests := []struct {
		name   string
		secret string
		body   string
		header string
		want   error
	}{
		{"GitHub's published test vector verifies", vectorSecret, vectorPayload, vectorSig, nil},
		{"a different secret does not", "another secret", vectorPayload, vectorSig, github.ErrSignatureMismatch},
		{"a tampered body does not", vectorSecret, vectorPayload + " ", vectorSig, github.ErrSignatureMismatch},
		{"a missing header is its own error", vectorSecret, vectorPayload, "", github.ErrSignatureMissing},
		{"sha1 alone is rejected", vectorSecret, vectorPayload, "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59", github.ErrSignatureMalformed},
		{"non-hex digits are malformed", vectorSecret, vectorPayload, "sha256=" + strings.Repeat("zz", 32), github.ErrSignatureMalformed},
		{"a short digest is malformed", vectorSecret, vectorPayload, vectorSig[:40], github.ErrSignatureMalformed},
		{"an empty secret never verifies", "", vectorPayload, github.Sign(nil, []byte(vectorPayload)), github.ErrSignatureMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := github.VerifySignature([]byte(tc.secret), []byte(tc.body), tc.header)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if got := github.Sign([]byte(vectorSecret), []byte(vectorPayload)); got != vectorSig {
		t.Errorf("Sign = %s, want %s", got, vectorSig)
	}
}

func pushPayload(t testing.TB) []byte {
	t.Helper()
	return fixture.Webhook(t, "push.json")
}

func webhookRequest(body []byte, mutate func(h http.Header)) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-GitHub-Event", "push")
	r.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	r.Header.Set(github.SignatureHeader, github.Sign([]byte("s3cret"), body))
	if mutate != nil {
		mutate(r.Header)
	}
	return r
}

func TestReadWebhook(t *testing.T) {
	push := pushPayload(t)
	form := []byte("payload=" + url.QueryEscape(string(push)))
	tests := []struct {
		name   string
		body   []byte
		max    int64
		mutate func(h http.Header)
		want   error
		status int
	}{
		{"a signed push is accepted", push, 25 << 20, nil, nil, 200},
		{"a form-encoded delivery yields its payload", form, 25 << 20, func(h http.Header) {
			h.Set("Content-Type", "application/x-www-form-urlencoded")
		}, nil, 200},
		{"a missing signature is 401", push, 25 << 20, func(h http.Header) { h.Del(github.SignatureHeader) }, github.ErrSignatureMissing, 401},
		{"a sha1-only delivery is 401", push, 25 << 20, func(h http.Header) {
			h.Del(github.SignatureHeader)
			h.Set("X-Hub-Signature", "sha1=0000000000000000000000000000000000000000")
		}, github.ErrSignatureMissing, 401},
		{"a wrong signature is 401", push, 25 << 20, func(h http.Header) { h.Set(github.SignatureHeader, github.Sign([]byte("other"), push)) }, github.ErrSignatureMismatch, 401},
		{"a body over the cap is 413", push, 1024, nil, github.ErrBodyTooLarge, 413},
		{"a body over the cap without Content-Length is 413", push, 1024, func(h http.Header) { h.Set("X-Unknown-Length", "1") }, github.ErrBodyTooLarge, 413},
		{"a signed non-JSON body is 400", []byte("not json"), 25 << 20, nil, github.ErrMalformedDelivery, 400},
		{"a missing event header is 400", push, 25 << 20, func(h http.Header) { h.Del("X-GitHub-Event") }, github.ErrMalformedDelivery, 400},
		{"a missing delivery id is 400", push, 25 << 20, func(h http.Header) { h.Del("X-GitHub-Delivery") }, github.ErrMalformedDelivery, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := webhookRequest(tc.body, tc.mutate)
			if r.Header.Get("X-Unknown-Length") != "" {
				r.ContentLength = -1 // chunked: the cap must hold while reading
			}
			d, err := github.ReadWebhook(r, []byte("s3cret"), tc.max)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got := github.WebhookStatus(err); got != tc.status {
				t.Errorf("WebhookStatus = %d, want %d", got, tc.status)
			}
			if err == nil && (d.Event != "push" || d.DeliveryID == "" || !bytes.Equal(d.Body, push)) {
				t.Errorf("delivery = %q %q, %d bytes", d.Event, d.DeliveryID, len(d.Body))
			}
		})
	}
}

// body25KB pads the real push payload to 25 KB with a field GitHub might well send.
func body25KB(b testing.TB) []byte {
	push := pushPayload(b)
	pad := 25*1024 - len(push) - len(`,"x":""`)
	return append(append(bytes.TrimSuffix(bytes.TrimSpace(push), []byte("}")), []byte(`,"x":"`+strings.Repeat("a", pad)+`"`)...), '}')
}

// BenchmarkVerify25KB measures the signature check of a 25 KB delivery, and reports it against a
// bare SHA-256 of the same bytes measured in the same run (the floor any HMAC must pay).
func BenchmarkVerify25KB(b *testing.B) {
	body := body25KB(b)
	secret := []byte("s3cret")
	sig := github.Sign(secret, body)

	const baseN = 2000
	t0 := time.Now()
	for range baseN {
		sha256.Sum256(body)
	}
	base := float64(time.Since(t0).Nanoseconds()) / baseN

	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for b.Loop() {
		if err := github.VerifySignature(secret, body, sig); err != nil {
			b.Fatal(err)
		}
	}
	per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(per/base, "x_sha256")
	b.ReportMetric(1e9/per, "deliveries/s")
}

// BenchmarkReadWebhook25KB adds reading, header checks and JSON validation to the signature check.
func BenchmarkReadWebhook25KB(b *testing.B) {
	body := body25KB(b)
	secret := []byte("s3cret")
	sig := github.Sign(secret, body)
	rd := bytes.NewReader(body)
	r := httptest.NewRequest(http.MethodPost, "/webhooks/github", rd)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-GitHub-Event", "push")
	r.Header.Set("X-GitHub-Delivery", "d")
	r.Header.Set(github.SignatureHeader, sig)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		rd.Reset(body)
		r.Body = http.NoBody
		r.Body = readCloser{rd}
		if _, err := github.ReadWebhook(r, secret, 25<<20); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(1e9/(float64(b.Elapsed().Nanoseconds())/float64(b.N)), "deliveries/s")
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
