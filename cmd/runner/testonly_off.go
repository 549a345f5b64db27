//go:build !agentrunner_testonly

package main

// testOnlyBuild: a production build, which refuses `--sandbox fake`: a daemon that runs no
// agents but reports runs as done must not be one setting away.
const testOnlyBuild = false
