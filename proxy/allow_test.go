package proxy

import (
	"net/netip"
	"strings"
	"testing"
)

func TestAllowMatchesExactNamesWildcardsAndLiterals(t *testing.T) {
	a, err := ParseAllow([]string{"api.example.com:443", "*.example.org:443", "203.0.113.7:8443", "[2001:db8::1]:443", "Upper.Example.NET.:80"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		port int
		want bool
	}{
		{"api.example.com", 443, true},
		{"API.EXAMPLE.COM.", 443, true},
		{"api.example.com", 80, false},
		{"x.api.example.com", 443, false},
		{"sub.example.org", 443, true},
		{"a.b.example.org", 443, true},
		{"example.org", 443, false},
		{"badexample.org", 443, false},
		{"sub.example.org", 80, false},
		{"203.0.113.7", 8443, true},
		{"203.0.113.7", 443, false},
		{"::ffff:203.0.113.7", 8443, true},
		{"2001:db8::1", 443, true},
		{"upper.example.net", 80, true},
		{"other.com", 443, false},
	} {
		if got := a.Allows(tc.host, tc.port); got != tc.want {
			t.Errorf("Allows(%s, %d) = %v, want %v", tc.host, tc.port, got, tc.want)
		}
	}
	var none *Allow
	if none.Allows("api.example.com", 443) {
		t.Error("a nil allow list allows something")
	}
}

func TestParseAllowNamesEveryBadEntry(t *testing.T) {
	for _, tc := range []struct {
		entry, want string
	}{
		{"example.com", "is not host:port"},
		{"example.com:0", "port \"0\" is not a number from 1 to 65535"},
		{"example.com:https", "is not a number"},
		{"a.*.example.com:443", "wildcard is allowed only as a leading"},
		{"*:443", "wildcard is allowed only as a leading"},
		{"*.10.0.0.1:443", "cannot precede an IP address"},
	} {
		_, err := ParseAllow([]string{"ok.example:443", tc.entry})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.entry) {
			t.Errorf("ParseAllow(%q) = %v, want an error naming it with %q", tc.entry, err, tc.want)
		}
	}
}

func TestForbiddenCoversSpecialRanges(t *testing.T) {
	for _, tc := range []struct {
		ip, want string
	}{
		{"127.0.0.1", "loopback"},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"169.254.169.254", "link-local"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"0.0.0.0", "unspecified"},
		{"224.0.0.251", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"::1", "loopback"},
		{"::", "unspecified"},
		{"fd00::1", "private"},
		{"fe80::1", "link-local"},
		{"ff02::1", "multicast"},
		{"::ffff:10.0.0.1", "private"},
		{"::ffff:169.254.169.254", "link-local"},
		{"64:ff9b::a00:1", "NAT64"},
		{"2002:a00:1::", "6to4"},
		{"8.8.8.8", ""},
		{"172.32.0.1", ""},
		{"2606:4700::1111", ""},
	} {
		got := Forbidden(netip.MustParseAddr(tc.ip))
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("Forbidden(%s) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}
