package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Allow is a parsed allow list. Entries are `host:port` or `*.domain:port`:
//
//   - `api.example.com:443` matches exactly that name (case-insensitive, a trailing dot
//     ignored) on that port;
//   - `*.example.com:443` matches any name below example.com (a.example.com,
//     a.b.example.com) on that port, but not example.com itself: list both when both are
//     needed;
//   - `203.0.113.7:443` (or `[2001:db8::1]:443`) matches only a request for that literal
//     address, never a name that resolves to it; the address filter still applies, so a
//     private, loopback or link-local literal is refused even when listed.
//
// There is no default port and no port wildcard.
type Allow struct {
	exact    map[string]bool // "host:port", lower case
	suffixes []string        // ".example.com:443"
}

// ParseAllow parses entries; the error names every bad entry.
func ParseAllow(entries []string) (*Allow, error) {
	a := &Allow{exact: map[string]bool{}}
	var bad []string
	for _, e := range entries {
		host, port, err := splitEntry(e)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		if rest, ok := strings.CutPrefix(host, "*."); ok {
			a.suffixes = append(a.suffixes, "."+rest+":"+port)
			continue
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			host = ip.Unmap().String()
		}
		a.exact[host+":"+port] = true
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("allow list: %s", strings.Join(bad, "; "))
	}
	return a, nil
}

func splitEntry(e string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(strings.TrimSpace(e))
	if err != nil {
		return "", "", fmt.Errorf("%q is not host:port (like api.openai.com:443 or *.github.com:443)", e)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", "", fmt.Errorf("%q: port %q is not a number from 1 to 65535", e, port)
	}
	host = normHost(host)
	name := strings.TrimPrefix(host, "*.")
	if name == "" || strings.Contains(name, "*") {
		return "", "", fmt.Errorf("%q: a wildcard is allowed only as a leading \"*.\" before a domain", e)
	}
	if strings.HasPrefix(host, "*.") {
		if _, err := netip.ParseAddr(name); err == nil {
			return "", "", fmt.Errorf("%q: a wildcard cannot precede an IP address", e)
		}
	}
	return host, port, nil
}

// normHost lower-cases a host and drops one trailing dot (an absolute DNS name).
func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// Allows reports whether host:port is on the list. host is a name or a literal IP as the
// client sent it.
func (a *Allow) Allows(host string, port int) bool {
	if a == nil {
		return false
	}
	host = normHost(host)
	if ip, err := netip.ParseAddr(host); err == nil {
		return a.exact[ip.Unmap().String()+":"+strconv.Itoa(port)]
	}
	key := host + ":" + strconv.Itoa(port)
	if a.exact[key] {
		return true
	}
	for _, s := range a.suffixes {
		// "a.example.com:443" ends with ".example.com:443"; "example.com:443" does not.
		if strings.HasSuffix(key, s) {
			return true
		}
	}
	return false
}
