// Package e2e holds the control room's browser tests: a headless Chromium (internal/browsertest)
// drives the web UI of a real `runner serve`, built from this module and started as a child
// process, whose agents run in real Docker containers. It has no code outside its tests.
package e2e
