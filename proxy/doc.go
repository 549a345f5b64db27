// Package proxy is the runner's egress proxy: the only way out of an agent container whose
// routine says `network: {allow: [...]}`. It is pure Go and knows nothing about Docker; the
// egress package runs it in a container (`runner proxy`) between a per-run internal network
// and an outside one.
//
// It serves two listeners:
//
//   - the forward proxy (HTTPS_PROXY/HTTP_PROXY): CONNECT tunnels and plain-HTTP requests in
//     absolute form, only to the agent's allow list (see Allow for the exact matching rules);
//   - the key endpoints: one plain-HTTP reverse proxy per model API under
//     /<agent token>/<provider>/..., which forwards to the real (HTTPS) API and adds the real key
//     header there, so the key never enters the agent container.
//
// # Identifying agents
//
// Each agent gets its own random token (Register). On the forward proxy it is the user name of
// the proxy URL (HTTPS_PROXY=http://<token>:x@proxy:3128), which clients send as
// Proxy-Authorization: Basic; on the key endpoints it is the first path segment of the base
// URL. Tokens were chosen over source addresses because the container's address is known only
// after Docker starts it, and a token also names the job when the agent's address changes or is
// shared. A request without a known token is refused (407 on the forward proxy, 403 on the key
// endpoints) and logged under the job "".
//
// # Address filter
//
// The proxy resolves names itself and dials the exact address it checked (no second
// resolution, so no DNS-rebinding window). It never dials loopback, private (RFC 1918,
// fc00::/7), link-local (169.254.0.0/16 with the cloud metadata address, fe80::/10),
// carrier-grade NAT (100.64.0.0/10), unspecified, multicast, documentation, benchmarking,
// reserved and IPv6 transition ranges that can embed such addresses (see special.go), whatever
// a name resolves to: the addresses of a name that fall in those ranges are dropped, and the
// destination is refused when none remains. A raw IP target is refused unless that exact IP is
// on the allow list and public.
//
// Only tests can widen the filter: the Config field that does so is unexported, set by this
// package's own tests, and by TestOnlyAllow in binaries built with the agentrunner_testonly
// build tag; in any other build TestOnlyAllow returns an error, so a production runner cannot
// be configured into dialing private addresses.
//
// Every attempt, allowed or refused, is logged (slog) with the job and kept in memory; Blocked
// returns a job's refused destinations for the run result.
package proxy
