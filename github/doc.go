// Package github talks to GitHub (or GitHub Enterprise): a go-github REST client over a retry
// layer tuned for GitHub's rate limits, GitHub App and static-token authentication, and webhook
// signature verification.
//
// It knows nothing about routines, runs or reporters; those build on the *github.Client it hands
// out. Tokens it obtains are never logged.
package github
