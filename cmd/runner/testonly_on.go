//go:build agentrunner_testonly

package main

// testOnlyBuild: this binary carries the agentrunner_testonly tag (integration tests), so it
// offers `--sandbox fake`, which runs no agents.
const testOnlyBuild = true
