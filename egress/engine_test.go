package egress

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/client"
)

func TestEngineFixesDNSLeak(t *testing.T) {
	tests := []struct {
		version string
		fixed   bool
	}{
		{"20.10.24+dfsg1", false}, // Debian 12's docker.io, unpatched
		{"23.0.10", false},
		{"23.0.11", true},
		{"24.0.9", false}, // 24.0 was not patched
		{"25.0.4", false},
		{"25.0.5", true},
		{"25.0.5-1~ubuntu.22.04~jammy", true},
		{"26.0.0", true},
		{"26.0.0-rc3", true},
		{"27.3.1", true},
		{"28.0", true},
	}
	for _, tc := range tests {
		got, err := engineFixesDNSLeak(tc.version)
		if err != nil || got != tc.fixed {
			t.Errorf("engineFixesDNSLeak(%q) = %v, %v; want %v", tc.version, got, err, tc.fixed)
		}
	}
	for _, bad := range []string{"", "dev", "v26.0.0", "26"} {
		if _, err := engineFixesDNSLeak(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("engineFixesDNSLeak(%q): err = %v, want one naming the version", bad, err)
		}
	}
}

// versionClient is an engine that reports a given version.
type versionClient struct {
	client.APIClient
	version string
	err     error
}

func (c versionClient) ServerVersion(context.Context) (types.Version, error) {
	return types.Version{Version: c.version}, c.err
}

func TestCheckEngineDNSExplainsAnUnfixedEngine(t *testing.T) {
	if err := CheckEngineDNS(t.Context(), versionClient{version: "27.3.1"}); err != nil {
		t.Errorf("a fixed engine: %v", err)
	}
	err := CheckEngineDNS(t.Context(), versionClient{version: "20.10.24+dfsg1"})
	for _, want := range []string{"20.10.24+dfsg1", DNSLeakCVE, "26.0.0, 25.0.5 and 23.0.11", "loopback", "upgrade"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to say %q", err, want)
		}
	}
	if err := CheckEngineDNS(t.Context(), versionClient{err: errors.New("connection refused")}); err == nil || !strings.Contains(err.Error(), DNSLeakCVE) {
		t.Errorf("an unreachable engine: err = %v", err)
	}
}
