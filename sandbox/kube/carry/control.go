package carry

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// The egress proxy's pod dials the exchange for its control channel: a GET on ControlRoute
// with its own token that the exchange upgrades to ControlProtocol, after which the connection
// carries what the proxy's standard input and output carry on Docker (its configuration, then
// control requests and replies, one JSON object per line). The proxy dials out, not the
// daemon in: pods reach the exchange already, and a daemon outside the cluster may not reach
// pods at all.
const (
	ControlRoute    = "/kube/v1/proxy-control"
	ControlProtocol = "agentrunner-proxy-control"
)

// DialControl opens the proxy's control channel at the exchange base, with token, then
// secures it with the pinned certificate and proves itself with proof (controltls.go); the
// exchange refuses a token it does not know yet for a while (its daemon is starting), so the
// dial is retried as the workspace's fetch is.
func DialControl(ctx context.Context, base, token string, certPEM []byte, proof string) (io.ReadWriteCloser, error) {
	// HTTP/1.1 only: an upgrade is HTTP/1.1's.
	tr := directTransport()
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	cli := &http.Client{Transport: tr}
	var conn io.ReadWriteCloser
	err := retrying(ctx, "dial the runner's exchange for the proxy's control channel", func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+ControlRoute, nil)
		if err != nil {
			return false, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", ControlProtocol)
		res, err := cli.Do(req)
		if err != nil {
			return true, err
		}
		if res.StatusCode != http.StatusSwitchingProtocols {
			msg, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
			res.Body.Close()
			return retryable(res.StatusCode), fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(msg)))
		}
		rwc, ok := res.Body.(io.ReadWriteCloser)
		if !ok {
			res.Body.Close()
			return false, fmt.Errorf("the exchange switched protocols but the connection is not writable")
		}
		conn = rwc
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return secure(ctx, conn, certPEM, proof)
}
