package workspace

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
)

// Identity used for every commit the runner makes and for commits an agent makes inside a
// workspace without configuring its own.
const (
	authorName  = "agentrunner"
	authorEmail = "agentrunner@users.noreply.github.com"
)

// Auth carries the credential for a remote. Token is a GitHub installation or personal token; it
// reaches git only through the environment of the one command that needs it, as an HTTP
// Authorization header scoped to the remote's origin.
type Auth struct {
	Token string
}

// GitError is a failed git command. Args and Stderr have every secret scrubbed.
type GitError struct {
	Args     []string
	ExitCode int
	Stderr   string
	Err      error
}

// Error implements error.
func (e *GitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if len(msg) > 2000 {
		msg = msg[:2000] + "…"
	}
	if msg == "" {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("git %s: %s", strings.Join(e.Args, " "), msg)
}

// Unwrap returns the process error.
func (e *GitError) Unwrap() error { return e.Err }

// gitRunner runs the git binary with a clean environment. HOME and XDG_CONFIG_HOME point at a
// directory the runner owns and keeps empty (never inside a repository it works on), and the
// global config, the excludes and the attributes files are pinned to /dev/null, so nothing of
// the host user's or anyone else's files there can change what git does.
type gitRunner struct {
	home    string
	config  [][2]string // command-scope config passed through GIT_CONFIG_COUNT, never argv
	env     []string
	secrets []string
}

func newGitRunner(home string) gitRunner {
	return gitRunner{
		home: home,
		config: [][2]string{
			// The source may belong to another user (a checkout the runner reads as root);
			// safe.directory is only honoured in protected (here: command) scope.
			{"safe.directory", "*"},
			{"user.name", authorName},
			{"user.email", authorEmail},
			// No repository hook runs on the host, whatever the repository says.
			{"core.hooksPath", "/dev/null"},
			// Nor an fsmonitor hook a repository's config names.
			{"core.fsmonitor", "false"},
			// The default excludes and attributes files live under XDG_CONFIG_HOME: even an
			// empty home the runner owns must not be able to change which files a workspace's
			// changes include or how they are diffed, should anything ever write there.
			{"core.excludesFile", "/dev/null"},
			{"core.attributesFile", "/dev/null"},
			{"advice.detachedHead", "false"},
			{"init.defaultBranch", "main"},
		},
	}
}

// withAuth returns a runner that sends auth's token to remoteURL's origin only.
func (g gitRunner) withAuth(remoteURL string, auth Auth) gitRunner {
	if auth.Token == "" {
		return g
	}
	basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + auth.Token))
	key := "http.extraHeader"
	if scope := urlOrigin(remoteURL); scope != "" {
		key = "http." + scope + ".extraHeader"
	}
	out := g
	out.config = append(append([][2]string(nil), g.config...), [2]string{key, "Authorization: Basic " + basic})
	out.secrets = append(append([]string(nil), g.secrets...), auth.Token, basic)
	return out
}

// withConfig returns a runner that sets kv (key, value) in every command's configuration,
// after and so above the runner's own.
func (g gitRunner) withConfig(kv ...[2]string) gitRunner {
	out := g
	out.config = append(append([][2]string(nil), g.config...), kv...)
	return out
}

// withEnv returns a runner that adds env (KEY=VALUE) to every command.
func (g gitRunner) withEnv(env ...string) gitRunner {
	out := g
	out.env = append(append([]string(nil), g.env...), env...)
	return out
}

func (g gitRunner) environ() []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + g.home,
		"XDG_CONFIG_HOME=" + g.home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_ATTR_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=/bin/false",
		"SSH_ASKPASS=/bin/false",
		"GIT_OPTIONAL_LOCKS=0",
		"LC_ALL=C",
		fmt.Sprintf("GIT_CONFIG_COUNT=%d", len(g.config)),
	}
	for i, kv := range g.config {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, kv[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, kv[1]))
	}
	return append(env, g.env...)
}

// run runs git with args in dir and returns its stdout.
func (g gitRunner) run(ctx context.Context, dir string, stdin []byte, args ...string) ([]byte, error) {
	var stdout bytes.Buffer
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	err := g.stream(ctx, dir, in, &stdout, args...)
	return stdout.Bytes(), err
}

// runTo runs git with args in dir and streams its stdout to w: for output too large to hold
// in memory, like a patch. Should w fail, git is stopped by the broken pipe.
func (g gitRunner) runTo(ctx context.Context, dir string, w io.Writer, args ...string) error {
	return g.stream(ctx, dir, nil, w, args...)
}

// stream runs git with args in dir, stdin (may be nil) as its input and stdout as its output.
func (g gitRunner) stream(ctx context.Context, dir string, stdin io.Reader, stdout io.Writer, args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = g.environ()
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		ge := &GitError{Args: g.scrubAll(args), Stderr: g.scrub(stderr.String()), Err: err}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			ge.ExitCode = ee.ExitCode()
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			ge.Err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return ge
	}
	return nil
}

// out runs git and returns its stdout without the trailing newline.
func (g gitRunner) out(ctx context.Context, dir string, args ...string) (string, error) {
	b, err := g.run(ctx, dir, nil, args...)
	return strings.TrimRight(string(b), "\n"), err
}

var userinfoRE = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@`)

// scrub removes every known secret and any credentials in URLs from s.
func (g gitRunner) scrub(s string) string {
	for _, sec := range g.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return userinfoRE.ReplaceAllString(s, "${1}***@")
}

func (g gitRunner) scrubAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = g.scrub(a)
	}
	return out
}

// urlOrigin returns scheme://host[:port]/ of an http(s) URL, or "" for any other URL.
func urlOrigin(u string) string {
	for _, scheme := range []string{"https://", "http://"} {
		if rest, ok := strings.CutPrefix(u, scheme); ok {
			host, _, _ := strings.Cut(rest, "/")
			if host == "" || strings.Contains(host, "@") {
				return ""
			}
			return scheme + host + "/"
		}
	}
	return ""
}

// checkRemoteURL refuses URLs that carry credentials: they would be written to config and logs.
func checkRemoteURL(u string) error {
	if u == "" {
		return errors.New("remote URL is empty")
	}
	if strings.HasPrefix(u, "-") {
		return fmt.Errorf("remote URL %q must not start with '-'", u)
	}
	if userinfoRE.MatchString(u) {
		return fmt.Errorf("remote URL %q carries credentials; pass the token as Auth instead", userinfoRE.ReplaceAllString(u, "${1}***@"))
	}
	return nil
}

var hexRE = regexp.MustCompile(`^[0-9a-f]{4,64}$`)

// checkSHA refuses anything that is not a hex object name, so user text never becomes a git option
// or a revision expression.
func checkSHA(what, sha string) error {
	if !hexRE.MatchString(sha) {
		return fmt.Errorf("%s %q is not a hex commit id", what, sha)
	}
	return nil
}

// resolveCommit returns the full id of the commit sha names in the repository at dir.
func (g gitRunner) resolveCommit(ctx context.Context, dir, sha string) (string, error) {
	full, err := g.out(ctx, dir, "rev-parse", "--verify", "--quiet", "--end-of-options", sha+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("commit %s not found in %s", sha, dir)
	}
	return full, nil
}

// gitDir returns the absolute git directory (for objects: the common dir) of the repository at dir.
func (g gitRunner) commonDir(ctx context.Context, dir string) (string, error) {
	d, err := g.out(ctx, dir, "rev-parse", "--path-format=absolute", "--git-common-dir")
	if err != nil {
		return "", fmt.Errorf("%s is not a git repository: %w", dir, err)
	}
	return d, nil
}
