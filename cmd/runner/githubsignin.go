package main

import (
	"context"
	"errors"
	"net/url"
	"strings"

	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/web"
	"github.com/agentrunner/agentrunner/web/githublogin"
)

// githubLoginKeyName names the store key that signs GitHub sign-in's state cookie: kept in the
// store so every daemon on a database accepts a sign-in another began.
const githubLoginKeyName = "github-login-state"

// githubCallbackPath is where GitHub sends people back; <public-url> + this must be a callback
// URL registered with the App.
const githubCallbackPath = "/ui/login/github/callback"

// githubSignIn builds the control room's "Sign in with GitHub" when the App's OAuth client id
// and secret are configured; nil when neither is.
func githubSignIn(ctx context.Context, c serveConfig, gh *github.Client, keys interface {
	Key(ctx context.Context, name string) ([]byte, error)
}) (*web.GitHubSignIn, error) {
	secret := c.GitHub.ClientSecret
	if secret == "" {
		var err error
		if secret, err = readSecretFile(c.GitHub.ClientSecretFile, "github client-secret-file"); err != nil {
			return nil, err
		}
	}
	switch {
	case c.GitHub.ClientID == "" && secret == "":
		return nil, nil
	case c.GitHub.ClientID == "" || secret == "":
		return nil, usageError{errors.New("GitHub sign-in needs both the App's client id (--github-client-id) and its client secret (--github-client-secret-file or AGENTRUNNER_GITHUB_CLIENT_SECRET)")}
	case c.PublicURL == "":
		return nil, usageError{errors.New("GitHub sign-in needs --public-url: GitHub sends people back to <public-url>" + githubCallbackPath)}
	case gh == nil:
		return nil, usageError{errors.New("GitHub sign-in needs the GitHub App (--github-app-id and --github-private-key-file): it reads people's roles on repositories through it")}
	}
	key, err := keys.Key(ctx, githubLoginKeyName)
	if err != nil {
		return nil, err
	}
	api := c.GitHub.APIURL
	if api == "" {
		api = "https://api.github.com/"
	}
	webURL, err := githubWebURL(api)
	if err != nil {
		return nil, usageError{err}
	}
	flow, err := githublogin.New(githublogin.Config{ClientID: c.GitHub.ClientID, ClientSecret: secret,
		WebURL: webURL, APIURL: api, CallbackURL: strings.TrimRight(c.PublicURL, "/") + githubCallbackPath, Key: key})
	if err != nil {
		return nil, usageError{err}
	}
	return &web.GitHubSignIn{Flow: flow, Roles: &githublogin.Roles{Lookup: githublogin.InstallationLookup(gh)}}, nil
}

// githubWebURL is the web root that goes with a REST root: github.com for api.github.com, and
// https://HOST for a GitHub Enterprise Server's https://HOST/api/v3/.
func githubWebURL(api string) (string, error) {
	u, err := url.Parse(api)
	if err != nil || u.Host == "" {
		return "", errors.New("github api-url " + api + " is not an absolute URL")
	}
	if u.Host == "api.github.com" {
		return "https://github.com", nil
	}
	return u.Scheme + "://" + u.Host + strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v3"), nil
}
