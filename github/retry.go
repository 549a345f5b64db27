package github

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// RetryPolicy bounds how the client retries. Zero fields take the defaults noted on each.
type RetryPolicy struct {
	// MaxAttempts is the total number of tries, the first included (default 5).
	MaxAttempts int
	// BaseDelay is the first backoff step for errors and 5xx; it doubles per attempt (default 1s).
	BaseDelay time.Duration
	// MaxBackoff caps the exponential backoff (default 30s).
	MaxBackoff time.Duration
	// MaxWait caps every single wait, rate-limit waits included (default 2m). When GitHub asks for a
	// longer wait (a primary rate limit resetting in 40 minutes), the client gives up at once with a
	// *RetryError instead of sleeping uselessly.
	MaxWait time.Duration
	// SecondaryWait is the wait after a secondary rate limit that gave no retry-after (default 60s,
	// GitHub's documented minimum).
	SecondaryWait time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 5
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = time.Second
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 30 * time.Second
	}
	if p.MaxWait <= 0 {
		p.MaxWait = 2 * time.Minute
	}
	if p.SecondaryWait <= 0 {
		p.SecondaryWait = 60 * time.Second
	}
	return p
}

// RetryError is returned when a request failed and was not (or no longer) retried: the attempts
// ran out, the wait GitHub asked for exceeded RetryPolicy.MaxWait, or a transport error could not
// be retried safely. A plain non-retryable HTTP status (404, 422) is not a RetryError: go-github
// reports it as *github.ErrorResponse.
type RetryError struct {
	Method   string
	Path     string
	Status   int    // last HTTP status, 0 when the last try got no response
	Attempts int    // tries made, the first included
	Reason   string // why it stopped
	Message  string // GitHub's "message" from the last response body, if any
	Err      error  // the last transport error, if any
}

func (e *RetryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "github: %s %s: giving up after %d attempt(s)", e.Method, e.Path, e.Attempts)
	if e.Status != 0 {
		fmt.Fprintf(&b, ", last status %d", e.Status)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, " (%q)", e.Message)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, ": %s", e.Reason)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *RetryError) Unwrap() error { return e.Err }

// attemptState travels in the request context through retryablehttp so the hooks, which see only a
// context or a request, can share what they decided for this one logical request.
type attemptState struct {
	method   string
	path     string
	attempts int
	wait     time.Duration // decided by checkRetry, slept by prepareRetry
	reason   string        // why the last decision stopped retrying, if it did
	status   int
	message  string
}

type stateKey struct{}

// errWaitTooLong stops retrying when GitHub asks for a wait above RetryPolicy.MaxWait; the
// *RetryError's Reason carries the detail.
var errWaitTooLong = errors.New("requested wait exceeds the limit")

// retryTransport is go-retryablehttp configured for GitHub. retryablehttp's own timer only ever
// sleeps 0: the real wait happens in PrepareRetry through the injected Clock, so tests can assert
// a 2 s wait without spending it.
type retryTransport struct {
	rt     *retryablehttp.RoundTripper
	policy RetryPolicy
	clock  Clock
	log    *slog.Logger
	jitter func(n int64) int64
}

func newRetryTransport(base http.RoundTripper, policy RetryPolicy, clock Clock, log *slog.Logger) *retryTransport {
	t := &retryTransport{policy: policy.withDefaults(), clock: clock, log: log, jitter: rand.Int64N}
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: base}
	rc.Logger = nil
	rc.RetryMax = t.policy.MaxAttempts - 1
	rc.CheckRetry = t.checkRetry
	rc.Backoff = func(time.Duration, time.Duration, int, *http.Response) time.Duration { return 0 }
	rc.PrepareRetry = t.prepareRetry
	rc.ErrorHandler = t.errorHandler
	t.rt = &retryablehttp.RoundTripper{Client: rc}
	return t
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := &attemptState{method: req.Method, path: req.URL.Path}
	req = req.WithContext(context.WithValue(req.Context(), stateKey{}, st))
	resp, err := t.rt.RoundTrip(req)
	var re *RetryError
	if errors.As(err, &re) {
		re.Method, re.Path = st.method, st.path
		if re.Status == 0 {
			re.Status = st.status
		}
		if re.Reason == "" {
			re.Reason = st.reason
		}
		if re.Message == "" {
			re.Message = st.message
		}
	}
	return resp, err
}

func (t *retryTransport) prepareRetry(req *http.Request) error {
	st, _ := req.Context().Value(stateKey{}).(*attemptState)
	if st == nil || st.wait <= 0 {
		return nil
	}
	if err := t.clock.Sleep(req.Context(), st.wait); err != nil {
		return fmt.Errorf("waiting %s before retrying %s %s: %w", st.wait, st.method, st.path, err)
	}
	return nil
}

func (t *retryTransport) errorHandler(resp *http.Response, err error, attempts int) (*http.Response, error) {
	re := &RetryError{Attempts: attempts, Err: err}
	if errors.Is(err, errWaitTooLong) {
		re.Err = nil
	}
	if resp != nil {
		re.Status = resp.StatusCode
		resp.Body.Close()
	}
	return nil, re
}

// checkRetry decides, after each try, whether to try again and how long to wait first.
func (t *retryTransport) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return false, ctxErr
	}
	st, _ := ctx.Value(stateKey{}).(*attemptState)
	if st == nil { // not from our RoundTrip; behave like a single try
		return false, nil
	}
	st.attempts++
	st.wait, st.reason, st.status, st.message = 0, "", 0, ""
	retry, wait, reason := t.decide(st, resp, err)
	if !retry {
		st.reason = reason
		return false, nil
	}
	if wait > t.policy.MaxWait {
		st.reason = fmt.Sprintf("%s: GitHub asks to wait %s, more than the %s limit", reason, wait.Round(time.Second), t.policy.MaxWait)
		// An error, not a plain "no retry", so the caller gets a *RetryError rather than the 403.
		return false, errWaitTooLong
	}
	st.wait = wait
	st.reason = reason
	if st.attempts < t.policy.MaxAttempts {
		attrs := []any{"method", st.method, "path", st.path, "attempt", st.attempts, "wait", wait, "reason", reason}
		if resp != nil {
			attrs = append(attrs, "status", resp.StatusCode)
		}
		t.log.Warn("github request will be retried", attrs...)
	} else {
		st.reason = reason + "; retries exhausted"
	}
	return true, nil
}

// decide is the GitHub retry policy. It returns whether to retry, the wait before the retry and a
// short reason for logs and errors.
func (t *retryTransport) decide(st *attemptState, resp *http.Response, err error) (bool, time.Duration, string) {
	if err != nil {
		if !retryableTransportError(err) {
			return false, 0, "transport error is not retryable"
		}
		// A POST whose connection failed after it was sent may have created the object: only a
		// failure to connect proves the server never saw it.
		if st.method == http.MethodPost && !neverSent(err) {
			return false, 0, "POST may have reached GitHub; not retried to avoid a duplicate"
		}
		return true, t.backoff(st.attempts), "transport error"
	}
	st.status = resp.StatusCode
	code := resp.StatusCode
	if code == http.StatusForbidden || code == http.StatusTooManyRequests {
		body := peekBody(resp)
		st.message = errorMessage(body)
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			if secs, perr := strconv.Atoi(strings.TrimSpace(ra)); perr == nil && secs >= 0 {
				return true, time.Duration(secs) * time.Second, "secondary rate limit (retry-after)"
			}
		}
		if resp.Header.Get("X-Ratelimit-Remaining") == "0" {
			if reset, perr := strconv.ParseInt(resp.Header.Get("X-Ratelimit-Reset"), 10, 64); perr == nil {
				wait := time.Unix(reset, 0).Sub(t.clock.Now()) + time.Second
				if wait < time.Second {
					wait = time.Second
				}
				return true, wait, "primary rate limit exhausted until x-ratelimit-reset"
			}
			return true, t.policy.SecondaryWait, "primary rate limit exhausted (no reset header)"
		}
		if bytes.Contains(bytes.ToLower(body), []byte("secondary rate limit")) {
			return true, t.policy.SecondaryWait, "secondary rate limit"
		}
		if code == http.StatusTooManyRequests {
			return true, t.backoff(st.attempts), "429 too many requests"
		}
		return false, 0, "403 forbidden"
	}
	if code >= 500 {
		// For a POST, a 502/503 means a proxy or GitHub refused to hand the request on; a 500 or 504
		// may come after the object was created, so those are not retried. Callers also look
		// objects up by deterministic keys before creating, which covers the rest.
		if st.method == http.MethodPost && code != http.StatusBadGateway && code != http.StatusServiceUnavailable {
			return false, 0, fmt.Sprintf("POST got %d and may have been applied; not retried", code)
		}
		return true, t.backoff(st.attempts), fmt.Sprintf("server error %d", code)
	}
	return false, 0, ""
}

// backoff is exponential with jitter in [d/2, d], capped at MaxBackoff.
func (t *retryTransport) backoff(attempt int) time.Duration {
	d := t.policy.BaseDelay
	for i := 1; i < attempt && d < t.policy.MaxBackoff; i++ {
		d *= 2
	}
	if d > t.policy.MaxBackoff {
		d = t.policy.MaxBackoff
	}
	half := int64(d / 2)
	if half <= 0 {
		return d
	}
	return time.Duration(half + t.jitter(half+1))
}

// peekBody reads up to 64 KB of the body for inspection and puts it back for the caller.
func peekBody(resp *http.Response) []byte {
	if resp.Body == nil {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
	return b
}

func errorMessage(body []byte) string {
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	return m.Message
}

// retryableTransportError rejects errors a retry cannot fix: bad certificates, bad URLs.
func retryableTransportError(err error) bool {
	var uae x509.UnknownAuthorityError
	var cie x509.CertificateInvalidError
	var hne x509.HostnameError
	if errors.As(err, &uae) || errors.As(err, &cie) || errors.As(err, &hne) {
		return false
	}
	msg := err.Error()
	if strings.Contains(msg, "unsupported protocol scheme") || strings.Contains(msg, "stopped after") {
		return false
	}
	return true
}

// neverSent reports whether err proves the request never reached the server: the dial (DNS,
// connection refused, unreachable) failed.
func neverSent(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}
