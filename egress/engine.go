package egress

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/docker/docker/client"
)

// DNSLeakCVE is the Docker engine flaw that made internal networks leak DNS: the embedded
// resolver (127.0.0.11) of a container on an internal network forwarded names it did not know
// to the host's resolver from the host's own network namespace when that resolver sat on the
// host's loopback (systemd-resolved, dnsmasq), so an agent could exfiltrate data by looking up
// names under a domain whose nameserver its author runs. Moby 26.0.0, 25.0.5 and 23.0.11 stop
// forwarding from internal networks; older engines (24.x and 20.10 included) do not.
const DNSLeakCVE = "CVE-2024-29018"

// engineFixesDNSLeak reports whether a Docker engine version ("26.1.3", "20.10.24+dfsg1",
// "25.0.5-1~ubuntu") has the fix for DNSLeakCVE.
func engineFixesDNSLeak(version string) (bool, error) {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false, fmt.Errorf("docker engine version %q is not major.minor[.patch]", version)
	}
	nums := make([]int, 3)
	for i, p := range parts {
		end := strings.IndexFunc(p, func(r rune) bool { return r < '0' || r > '9' })
		if end == 0 {
			return false, fmt.Errorf("docker engine version %q is not major.minor[.patch]", version)
		}
		if end > 0 {
			p = p[:end]
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return false, fmt.Errorf("docker engine version %q is not major.minor[.patch]", version)
		}
		nums[i] = n
	}
	major, minor, patch := nums[0], nums[1], nums[2]
	switch {
	case major >= 26:
		return true, nil
	case major == 25 && minor == 0:
		return patch >= 5, nil
	case major == 23 && minor == 0:
		return patch >= 11, nil
	default:
		return false, nil
	}
}

// CheckEngineDNS asks the engine for its version and returns an error that explains the risk
// when it lacks the fix for DNSLeakCVE (or its version cannot be read). The runner still
// starts allow-listed agents on such an engine, because the sandbox gives every one of them its
// own loopback as DNS server (sandbox.AllowDNS), the advisory's workaround, but the operator
// should know that this setting is what stands between an agent and the host's resolver.
func CheckEngineDNS(ctx context.Context, cli client.APIClient) error {
	v, err := cli.ServerVersion(ctx)
	if err != nil {
		return fmt.Errorf("read the docker engine version to check for the fix of %s: %s", DNSLeakCVE, sandbox.CleanDockerError(err))
	}
	fixed, err := engineFixesDNSLeak(v.Version)
	if err != nil {
		return fmt.Errorf("check the docker engine for the fix of %s: %w", DNSLeakCVE, err)
	}
	if fixed {
		return nil
	}
	return fmt.Errorf("docker engine %s lacks the fix for %s (in 26.0.0, 25.0.5 and 23.0.11): its embedded DNS "+
		"forwards lookups from internal networks to a resolver on the host's loopback, a way out past the egress proxy; "+
		"allow-listed agents are given their own loopback as DNS server so nothing is forwarded, but upgrade the engine",
		v.Version, DNSLeakCVE)
}
