package proxy

import (
	"net/netip"
)

// forbidden are the ranges the proxy never dials, whatever the allow list says: anything that
// is not an ordinary public unicast address. IPv4-mapped IPv6 addresses are unmapped before
// the check, so ::ffff:10.0.0.1 is caught by 10.0.0.0/8.
var forbidden = []struct {
	prefix netip.Prefix
	why    string
}{
	{p("0.0.0.0/8"), "unspecified (\"this network\") address"},
	{p("10.0.0.0/8"), "private address"},
	{p("100.64.0.0/10"), "carrier-grade NAT address"},
	{p("127.0.0.0/8"), "loopback address"},
	{p("169.254.0.0/16"), "link-local address (cloud metadata)"},
	{p("172.16.0.0/12"), "private address"},
	{p("192.0.0.0/24"), "IETF protocol assignment"},
	{p("192.0.2.0/24"), "documentation address"},
	{p("192.88.99.0/24"), "6to4 relay anycast address"},
	{p("192.168.0.0/16"), "private address"},
	{p("198.18.0.0/15"), "benchmarking address"},
	{p("198.51.100.0/24"), "documentation address"},
	{p("203.0.113.0/24"), "documentation address"},
	{p("224.0.0.0/4"), "multicast address"},
	{p("240.0.0.0/4"), "reserved or broadcast address"},
	{p("::/128"), "unspecified address"},
	{p("::1/128"), "loopback address"},
	{p("::/96"), "IPv4-compatible address (deprecated)"},
	{p("64:ff9b::/96"), "NAT64 address (can embed a private IPv4 address)"},
	{p("64:ff9b:1::/48"), "local-use NAT64 address"},
	{p("100::/64"), "discard-only address"},
	{p("2001::/23"), "IETF protocol assignment (Teredo and others)"},
	{p("2001:db8::/32"), "documentation address"},
	{p("2002::/16"), "6to4 address (can embed a private IPv4 address)"},
	{p("fc00::/7"), "private (unique local) address"},
	{p("fe80::/10"), "link-local address"},
	{p("fec0::/10"), "site-local address (deprecated)"},
	{p("ff00::/8"), "multicast address"},
}

func p(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// Forbidden reports why ip must not be dialled, or "" when it is an ordinary public address.
func Forbidden(ip netip.Addr) string {
	if !ip.IsValid() {
		return "invalid address"
	}
	ip = ip.Unmap()
	for _, f := range forbidden {
		if f.prefix.Contains(ip) {
			return f.why
		}
	}
	return ""
}
