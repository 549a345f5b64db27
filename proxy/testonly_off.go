//go:build !agentrunner_testonly

package proxy

// TestOnlyAllow refuses in this build: only binaries built with the agentrunner_testonly tag
// (integration tests) may widen the address filter.
func TestOnlyAllow(*Config, *TestOnly) error { return ErrTestOnly }
