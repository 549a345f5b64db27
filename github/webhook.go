package github

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// Webhook errors. The server maps them with WebhookStatus: signature problems to 401, a body over
// the cap to 413, anything else malformed to 400.
var (
	// ErrSignatureMissing: no X-Hub-Signature-256 header (a sha1-only X-Hub-Signature does not count).
	ErrSignatureMissing = errors.New("webhook: missing X-Hub-Signature-256 header")
	// ErrSignatureMalformed: the header is not "sha256=" followed by 64 hex digits.
	ErrSignatureMalformed = errors.New(`webhook: malformed X-Hub-Signature-256 header (want "sha256=<64 hex digits>")`)
	// ErrSignatureMismatch: the HMAC does not match; wrong secret or a tampered body.
	ErrSignatureMismatch = errors.New("webhook: X-Hub-Signature-256 does not match the body")
	// ErrBodyTooLarge: the body exceeds the cap given to ReadWebhook.
	ErrBodyTooLarge = errors.New("webhook: body too large")
	// ErrMalformedDelivery: missing X-GitHub-Event, unreadable body, or a payload that is not JSON.
	ErrMalformedDelivery = errors.New("webhook: malformed delivery")
)

// SignatureHeader is the header GitHub signs deliveries with.
const SignatureHeader = "X-Hub-Signature-256"

// VerifySignature checks header ("sha256=<hex>", the X-Hub-Signature-256 value) against the
// HMAC-SHA256 of body under secret, in constant time. An empty secret never verifies.
func VerifySignature(secret, body []byte, header string) error {
	if header == "" {
		return ErrSignatureMissing
	}
	hexSig, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(hexSig) != sha256.Size*2 {
		return ErrSignatureMalformed
	}
	want := make([]byte, sha256.Size)
	if _, err := hex.Decode(want, []byte(hexSig)); err != nil {
		return ErrSignatureMalformed
	}
	if len(secret) == 0 {
		return fmt.Errorf("%w (no webhook secret is configured)", ErrSignatureMismatch)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), want) {
		return ErrSignatureMismatch
	}
	return nil
}

// Sign returns the X-Hub-Signature-256 value GitHub would send for body; tests and replay tools
// use it to build deliveries.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Delivery is a verified webhook delivery.
type Delivery struct {
	Event      string // X-GitHub-Event, e.g. "pull_request"
	DeliveryID string // X-GitHub-Delivery, the dedupe key
	Body       []byte // the JSON payload (for form-encoded deliveries, the decoded payload field)
}

// ReadWebhook reads at most maxBytes of r's body, verifies its signature before looking inside,
// and returns the delivery. It checks only that the payload looks like a JSON object; decoding it
// (and answering 400 when that fails) is the caller's job. Errors wrap the Err* values above; see
// WebhookStatus.
func ReadWebhook(r *http.Request, secret []byte, maxBytes int64) (*Delivery, error) {
	if r.ContentLength > maxBytes {
		return nil, fmt.Errorf("%w: %d bytes declared, limit %d", ErrBodyTooLarge, r.ContentLength, maxBytes)
	}
	if r.Body == nil {
		return nil, fmt.Errorf("%w: no body", ErrMalformedDelivery)
	}
	body, err := readCapped(r.Body, r.ContentLength, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: read body: %v", ErrMalformedDelivery, err)
	}
	if int64(len(body)) > maxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, maxBytes)
	}
	if err := VerifySignature(secret, body, r.Header.Get(SignatureHeader)); err != nil {
		return nil, err
	}
	d := &Delivery{Event: r.Header.Get("X-GitHub-Event"), DeliveryID: r.Header.Get("X-GitHub-Delivery"), Body: body}
	if d.Event == "" {
		return nil, fmt.Errorf("%w: missing X-GitHub-Event header", ErrMalformedDelivery)
	}
	if d.DeliveryID == "" {
		return nil, fmt.Errorf("%w: missing X-GitHub-Delivery header", ErrMalformedDelivery)
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil || !form.Has("payload") {
			return nil, fmt.Errorf("%w: form-encoded delivery without a payload field", ErrMalformedDelivery)
		}
		d.Body = []byte(form.Get("payload"))
	}
	// Only a cheap shape check: the caller decodes the payload anyway, and a second full JSON
	// scan here would cost more than the HMAC. A decode error there is also a 400.
	if trimmed := bytes.TrimSpace(d.Body); len(trimmed) < 2 || trimmed[0] != '{' || trimmed[len(trimmed)-1] != '}' {
		return nil, fmt.Errorf("%w: payload is not a JSON object", ErrMalformedDelivery)
	}
	return d, nil
}

// WebhookStatus maps a ReadWebhook error to the HTTP status to answer GitHub with.
func WebhookStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrSignatureMissing), errors.Is(err, ErrSignatureMalformed), errors.Is(err, ErrSignatureMismatch):
		return http.StatusUnauthorized
	case errors.Is(err, ErrBodyTooLarge):
		return http.StatusRequestEntityTooLarge
	default:
		return http.StatusBadRequest
	}
}

// readCapped reads r to EOF or to one byte past limit, sized from hint (Content-Length, already
// checked against limit) so a 25 KB delivery costs one allocation.
func readCapped(r io.Reader, hint, limit int64) ([]byte, error) {
	buf := make([]byte, 0, min(max(hint, 512), limit)+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		end := cap(buf)
		if int64(end) > limit { // limit+1 fits in an int here, since end does
			end = int(limit) + 1
		}
		n, err := r.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit || err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
