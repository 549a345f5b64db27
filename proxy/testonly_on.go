//go:build agentrunner_testonly

package proxy

import (
	"fmt"
	"net/netip"
)

// TestOnlyAllow applies t to cfg. This build carries the agentrunner_testonly tag, so it
// accepts; production builds return ErrTestOnly instead.
func TestOnlyAllow(cfg *Config, t *TestOnly) error {
	prefixes, hosts, err := t.parse()
	if err != nil {
		return err
	}
	cfg.testAllow, cfg.testHosts = prefixes, hosts
	return nil
}

// parse turns t into the Config fields it sets.
func (t *TestOnly) parse() ([]netip.Prefix, map[string][]netip.Addr, error) {
	var prefixes []netip.Prefix
	for _, s := range t.AllowPrefixes {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, nil, fmt.Errorf("test_only.allow_prefixes: %w", err)
		}
		prefixes = append(prefixes, p.Masked())
	}
	hosts := map[string][]netip.Addr{}
	for name, ips := range t.Hosts {
		for _, s := range ips {
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return nil, nil, fmt.Errorf("test_only.hosts[%s]: %w", name, err)
			}
			hosts[normHost(name)] = append(hosts[normHost(name)], ip)
		}
	}
	return prefixes, hosts, nil
}
