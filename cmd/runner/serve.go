package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/daemon"
	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/livelog"
	"github.com/agentrunner/agentrunner/proxy"
	"github.com/agentrunner/agentrunner/reporters"
	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/sandbox/kube"
	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/web"
	"github.com/agentrunner/agentrunner/workspace"
)

func init() { register(newServeCmd) }

// serveConfig is runner.yaml; every field is also a flag and an AGENTRUNNER_* variable.
// Precedence: flag, then environment, then file, then default. defaultServeConfig is the one
// place the defaults live: the flags show them, and a test holds examples/runner.yaml's
// "default:" comments to the flags.
type serveConfig struct {
	Listen        string        `yaml:"listen"`
	DataDir       string        `yaml:"data-dir"`
	Database      string        `yaml:"database"`
	ID            string        `yaml:"id"`
	PublicURL     string        `yaml:"public-url"`
	InternalURL   string        `yaml:"internal-url"`
	LogFormat     string        `yaml:"log-format"`
	LogLevel      string        `yaml:"log-level"`
	MaxAgents     int           `yaml:"max-agents"`
	MaxRuns       int           `yaml:"max-runs"`
	MaxRunsRepo   int           `yaml:"max-runs-per-repo"`
	RunAttempts   int           `yaml:"run-attempts"`
	LeaseTTL      time.Duration `yaml:"lease-ttl"`
	ShutdownGrace time.Duration `yaml:"shutdown-grace"`
	Schedules     bool          `yaml:"schedules"`
	Sandbox       string        `yaml:"sandbox"`
	Reporters     string        `yaml:"reporters"`
	GitBaseURL    string        `yaml:"git-base-url"`
	GitHub        struct {
		APIURL            string `yaml:"api-url"`
		AppID             int64  `yaml:"app-id"`
		PrivateKeyFile    string `yaml:"private-key-file"`
		Token             string `yaml:"token"`
		TokenFile         string `yaml:"token-file"`
		WebhookSecret     string `yaml:"webhook-secret"`
		WebhookSecretFile string `yaml:"webhook-secret-file"`
		// ClientID and ClientSecret are the App's OAuth client: with them the control room
		// offers "Sign in with GitHub".
		ClientID         string `yaml:"client-id"`
		ClientSecret     string `yaml:"client-secret"`
		ClientSecretFile string `yaml:"client-secret-file"`
	} `yaml:"github"`
	Secrets struct {
		Dir string   `yaml:"dir"`
		Env []string `yaml:"env"`
	} `yaml:"secrets"`
	Repos []daemon.Repo `yaml:"repos"`
	// Limits are the runner-wide bounds of one job, for routines that set none themselves.
	Limits struct {
		Disk        byteSize `yaml:"disk"`
		ChangedFile byteSize `yaml:"changed-file"`
		Patch       byteSize `yaml:"patch"`
		Log         byteSize `yaml:"log"`
	} `yaml:"limits"`
	// Workspace says how jobs' workspaces are made.
	Workspace struct {
		Mode string `yaml:"mode"`
	} `yaml:"workspace"`
	// Prices add to and override the egress proxy's price table for budgets (USD per million
	// tokens, by model name prefix).
	Prices map[string]proxy.Price `yaml:"prices"`
	// Budget holds the runner-wide model budgets.
	Budget struct {
		RepoDay float64 `yaml:"repo-day"`
	} `yaml:"budget"`
	// Kubernetes configures `sandbox: kubernetes` (serve_kube.go).
	Kubernetes kubeConfig `yaml:"kubernetes"`
}

// prices is the price table budgets are metered with: the defaults, with runner.yaml's prices
// over them.
func (c serveConfig) prices() proxy.Prices {
	if len(c.Prices) == 0 {
		return nil
	}
	out := maps.Clone(proxy.DefaultPrices)
	maps.Copy(out, c.Prices)
	return out
}

func defaultServeConfig() serveConfig {
	c := serveConfig{
		Listen:        "127.0.0.1:8080",
		DataDir:       defaultDataDir(),
		LogFormat:     "text",
		LogLevel:      "info",
		MaxAgents:     8,
		MaxRuns:       16,
		RunAttempts:   3,
		LeaseTTL:      30 * time.Second,
		ShutdownGrace: 30 * time.Second,
		Schedules:     true,
		Sandbox:       "docker",
		Reporters:     "auto",
	}
	c.Workspace.Mode = workspaceAuto
	return c
}

func defaultDataDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" { // systemd's StateDirectory=
		return d
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "agentrunner")
	}
	return "agentrunner-data"
}

// storeFlags are the flags every command that opens the store takes.
type storeFlags struct {
	Config   string
	DataDir  string
	Database string
}

func (f *storeFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.Config, "config", os.Getenv("AGENTRUNNER_CONFIG"), "runner.yaml to read settings from (env AGENTRUNNER_CONFIG)")
	fs.StringVar(&f.DataDir, "data-dir", "", "directory for the embedded database, runs, logs and workspaces (env AGENTRUNNER_DATA_DIR)")
	fs.StringVar(&f.Database, "database", "", "postgres://… to share one database between daemons; default SQLite in --data-dir (env AGENTRUNNER_DATABASE)")
}

// resolve applies file, environment and flags to the store location.
func (f *storeFlags) resolve(fs *pflag.FlagSet) (serveConfig, error) {
	c := defaultServeConfig()
	if err := loadServeFile(f.Config, &c); err != nil {
		return c, err
	}
	envOr(&c.DataDir, "AGENTRUNNER_DATA_DIR")
	envOr(&c.Database, "AGENTRUNNER_DATABASE")
	if fs.Changed("data-dir") {
		c.DataDir = f.DataDir
	}
	if fs.Changed("database") {
		c.Database = f.Database
	}
	return c, nil
}

func (c serveConfig) dsn() string {
	if c.Database != "" {
		return c.Database
	}
	return "sqlite://" + filepath.Join(c.DataDir, "runner.db")
}

func envOr(p *string, name string) {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		*p = v
	}
}

// byteSize is a size in runner.yaml, written like the routines' sizes: 512m, 2g or bytes.
type byteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *byteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := config.ParseSize(n.Value)
	if err != nil || v <= 0 || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %q is not a size: write a positive size like 512m, 2g or 1.5g (k, m, g, t are powers of 1024; a bare number is bytes)", n.Line, n.Value)
	}
	*b = byteSize(v)
	return nil
}

// jobLimits are the engine's limits runner.yaml sets (zero: the engine's defaults).
func (c *serveConfig) jobLimits() runner.Limits {
	return runner.Limits{ChangedFile: int64(c.Limits.ChangedFile), Patch: int64(c.Limits.Patch), Log: int64(c.Limits.Log)}
}

func loadServeFile(path string, c *serveConfig) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return usageError{fmt.Errorf("--config: %w", err)}
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return usageError{fmt.Errorf("%s: %w", path, err)}
	}
	// Relative paths in the file are relative to the file.
	base := filepath.Dir(path)
	for _, p := range []*string{&c.DataDir, &c.GitHub.PrivateKeyFile, &c.GitHub.TokenFile, &c.GitHub.WebhookSecretFile, &c.GitHub.ClientSecretFile, &c.Secrets.Dir} {
		if *p != "" && !filepath.IsAbs(*p) {
			if abs, err := filepath.Abs(filepath.Join(base, *p)); err == nil {
				*p = abs
			}
		}
	}
	for i := range c.Repos {
		u := c.Repos[i].URL
		if u != "" && !strings.Contains(u, "://") && !filepath.IsAbs(u) {
			c.Repos[i].URL = filepath.Join(base, u)
		}
	}
	return nil
}

type serveOptions struct {
	storeFlags
	c serveConfig
}

func newServeCmd(s *streams) *cobra.Command {
	o := &serveOptions{c: defaultServeConfig()}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: GitHub webhooks, schedules, the dispatch API, from a durable queue",
		Long: `Run agentrunner as a service. Every webhook, dispatch and schedule tick is committed to the
store before it is acknowledged; workers take them from the queue, plan them and run the agents.
Settings come from flags, AGENTRUNNER_* variables and an optional runner.yaml (--config), in that
order of precedence; examples/runner.yaml documents every key.

SIGTERM or SIGINT stops intake (webhooks answer 503), lets running agents finish within
--shutdown-grace, then cancels them and gives their runs back to the queue for the next start.

The control room (<public-url>/ui/) signs people in with an API token. With the GitHub App's
OAuth client id and secret (--github-client-id, --github-client-secret-file) and --public-url,
it also offers "Sign in with GitHub": register <public-url>/ui/login/github/callback as the
App's callback URL. A person signed in with GitHub sees the runs of the repositories they can
read on GitHub, and may cancel and re-run only where they can write; roles are read through the
App's installation and cached for a minute.`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.settings(cmd.Flags())
			if err != nil {
				return err
			}
			return serve(cmd.Context(), s, c)
		},
	}
	f := cmd.Flags()
	o.storeFlags.add(f)
	d := o.c
	f.String("listen", d.Listen, "address to serve HTTP on (env AGENTRUNNER_LISTEN)")
	f.String("id", "", "this daemon's name in job leases; unique per daemon, stable across restarts (default host:listen) (env AGENTRUNNER_ID)")
	f.String("public-url", "", "URL the runner is reached at, for the run page links of check runs, pull requests and comments (env AGENTRUNNER_PUBLIC_URL)")
	f.String("internal-url", "", "URL the other daemons sharing the database reach this one at, to follow the live logs of the jobs it runs (default http://<hostname>:<listen port>) (env AGENTRUNNER_INTERNAL_URL)")
	f.String("log-format", d.LogFormat, "log format: text or json (env AGENTRUNNER_LOG_FORMAT)")
	f.String("log-level", d.LogLevel, "log level: debug, info, warn, error (env AGENTRUNNER_LOG_LEVEL)")
	f.Int("max-agents", d.MaxAgents, "agent containers running at once across all runs (env AGENTRUNNER_MAX_AGENTS)")
	f.Int("max-runs", d.MaxRuns, "runs this daemon works on at once (env AGENTRUNNER_MAX_RUNS)")
	f.Int("max-runs-per-repo", d.MaxRunsRepo, "runs of one repository under way at once, across all daemons on the database; 0 is no limit (env AGENTRUNNER_MAX_RUNS_PER_REPO)")
	f.Int("run-attempts", d.RunAttempts, "tries of a run whose daemon died or whose infrastructure failed, before it concludes as failed (env AGENTRUNNER_RUN_ATTEMPTS)")
	f.Duration("lease-ttl", d.LeaseTTL, "how long a job's lease lives without a heartbeat (env AGENTRUNNER_LEASE_TTL)")
	f.Duration("shutdown-grace", d.ShutdownGrace, "how long running agents may finish after SIGTERM (env AGENTRUNNER_SHUTDOWN_GRACE)")
	f.Bool("schedules", d.Schedules, "fire the routines' schedule triggers (env AGENTRUNNER_SCHEDULES)")
	f.String("reporters", d.Reporters, "where runs report: auto (GitHub when configured), github, log, none (env AGENTRUNNER_REPORTERS)")
	f.String("git-base-url", "", "where repositories without a clone URL are fetched from (default https://github.com) (env AGENTRUNNER_GIT_BASE_URL)")
	f.String("github-api-url", "", "GitHub REST API root; https://HOST/api/v3/ for GitHub Enterprise (env AGENTRUNNER_GITHUB_API_URL)")
	f.Int64("github-app-id", 0, "GitHub App id (env AGENTRUNNER_GITHUB_APP_ID)")
	f.String("github-private-key-file", "", "GitHub App private key, PEM (env AGENTRUNNER_GITHUB_PRIVATE_KEY_FILE)")
	f.String("github-token-file", "", "file holding a GitHub token, instead of an App (env AGENTRUNNER_GITHUB_TOKEN holds the token itself)")
	f.String("github-webhook-secret-file", "", "file holding the webhook secret (env AGENTRUNNER_GITHUB_WEBHOOK_SECRET holds the secret itself)")
	f.String("github-client-id", "", "the GitHub App's OAuth client id; with its secret the control room offers \"Sign in with GitHub\" (env AGENTRUNNER_GITHUB_CLIENT_ID)")
	f.String("github-client-secret-file", "", "file holding the GitHub App's OAuth client secret (env AGENTRUNNER_GITHUB_CLIENT_SECRET holds the secret itself)")
	f.String("secrets-dir", "", "directory of per-repository secrets, <owner>/<repo>.env (default <data-dir>/secrets) (env AGENTRUNNER_SECRETS_DIR)")
	f.StringSlice("secret-env", nil, "environment variable handed to every repository as a secret of the same name (repeatable) (env AGENTRUNNER_SECRET_ENV, comma-separated)")
	f.String("workspace-mode", d.Workspace.Mode, "how jobs' workspaces are made: overlay (a copy-on-write layer over one shared checkout per commit), checkout (a full checkout each), auto (overlay where the Docker engine can mount it) (env AGENTRUNNER_WORKSPACE_MODE)")
	f.String("sandbox", d.Sandbox, "docker or kubernetes (runner.yaml's kubernetes: block); test builds also offer fake (no containers, for the daemon's own crash and load tests)")
	_ = f.MarkHidden("sandbox")
	return cmd
}

// settings merges defaults, runner.yaml, AGENTRUNNER_* and flags.
func (o *serveOptions) settings(fs *pflag.FlagSet) (serveConfig, error) {
	c, err := o.storeFlags.resolve(fs)
	if err != nil {
		return c, err
	}
	str := func(p *string) func(string) error { return func(v string) error { *p = v; return nil } }
	num := func(p *int) func(string) error {
		return func(v string) error {
			n, err := strconv.Atoi(v)
			*p = n
			return err
		}
	}
	dur := func(p *time.Duration) func(string) error {
		return func(v string) error {
			d, err := time.ParseDuration(v)
			*p = d
			return err
		}
	}
	boolean := func(p *bool) func(string) error {
		return func(v string) error {
			b, err := strconv.ParseBool(v)
			*p = b
			return err
		}
	}
	list := func(p *[]string) func(string) error {
		return func(v string) error {
			*p = nil
			for _, s := range strings.Split(strings.Trim(v, "[]"), ",") {
				if s = strings.TrimSpace(s); s != "" {
					*p = append(*p, s)
				}
			}
			return nil
		}
	}
	appID := func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		c.GitHub.AppID = n
		return err
	}
	bindings := []struct {
		flag, env string
		set       func(string) error
	}{
		{"listen", "AGENTRUNNER_LISTEN", str(&c.Listen)},
		{"id", "AGENTRUNNER_ID", str(&c.ID)},
		{"public-url", "AGENTRUNNER_PUBLIC_URL", str(&c.PublicURL)},
		{"internal-url", "AGENTRUNNER_INTERNAL_URL", str(&c.InternalURL)},
		{"log-format", "AGENTRUNNER_LOG_FORMAT", str(&c.LogFormat)},
		{"log-level", "AGENTRUNNER_LOG_LEVEL", str(&c.LogLevel)},
		{"max-agents", "AGENTRUNNER_MAX_AGENTS", num(&c.MaxAgents)},
		{"max-runs", "AGENTRUNNER_MAX_RUNS", num(&c.MaxRuns)},
		{"max-runs-per-repo", "AGENTRUNNER_MAX_RUNS_PER_REPO", num(&c.MaxRunsRepo)},
		{"run-attempts", "AGENTRUNNER_RUN_ATTEMPTS", num(&c.RunAttempts)},
		{"lease-ttl", "AGENTRUNNER_LEASE_TTL", dur(&c.LeaseTTL)},
		{"shutdown-grace", "AGENTRUNNER_SHUTDOWN_GRACE", dur(&c.ShutdownGrace)},
		{"schedules", "AGENTRUNNER_SCHEDULES", boolean(&c.Schedules)},
		{"reporters", "AGENTRUNNER_REPORTERS", str(&c.Reporters)},
		{"git-base-url", "AGENTRUNNER_GIT_BASE_URL", str(&c.GitBaseURL)},
		{"github-api-url", "AGENTRUNNER_GITHUB_API_URL", str(&c.GitHub.APIURL)},
		{"github-app-id", "AGENTRUNNER_GITHUB_APP_ID", appID},
		{"github-private-key-file", "AGENTRUNNER_GITHUB_PRIVATE_KEY_FILE", str(&c.GitHub.PrivateKeyFile)},
		{"github-token-file", "AGENTRUNNER_GITHUB_TOKEN_FILE", str(&c.GitHub.TokenFile)},
		{"", "AGENTRUNNER_GITHUB_TOKEN", str(&c.GitHub.Token)},
		{"github-webhook-secret-file", "AGENTRUNNER_GITHUB_WEBHOOK_SECRET_FILE", str(&c.GitHub.WebhookSecretFile)},
		{"", "AGENTRUNNER_GITHUB_WEBHOOK_SECRET", str(&c.GitHub.WebhookSecret)},
		{"github-client-id", "AGENTRUNNER_GITHUB_CLIENT_ID", str(&c.GitHub.ClientID)},
		{"github-client-secret-file", "AGENTRUNNER_GITHUB_CLIENT_SECRET_FILE", str(&c.GitHub.ClientSecretFile)},
		{"", "AGENTRUNNER_GITHUB_CLIENT_SECRET", str(&c.GitHub.ClientSecret)},
		{"secrets-dir", "AGENTRUNNER_SECRETS_DIR", str(&c.Secrets.Dir)},
		{"secret-env", "AGENTRUNNER_SECRET_ENV", list(&c.Secrets.Env)},
		{"sandbox", "AGENTRUNNER_SANDBOX", str(&c.Sandbox)},
		{"workspace-mode", "AGENTRUNNER_WORKSPACE_MODE", str(&c.Workspace.Mode)},
	}
	for _, b := range bindings {
		if v, ok := os.LookupEnv(b.env); ok && v != "" {
			if err := b.set(v); err != nil {
				return c, usageError{fmt.Errorf("%s=%q: %w", b.env, v, err)}
			}
		}
		if b.flag != "" && fs.Changed(b.flag) {
			if err := b.set(fs.Lookup(b.flag).Value.String()); err != nil {
				return c, usageError{fmt.Errorf("--%s: %w", b.flag, err)}
			}
		}
	}
	switch {
	case c.LogFormat != "text" && c.LogFormat != "json":
		return c, usageError{fmt.Errorf("log format %q: want text or json", c.LogFormat)}
	case c.Sandbox == "fake" && !testOnlyBuild:
		return c, usageError{errors.New(`sandbox "fake" exists only in test builds of the runner (-tags agentrunner_testonly); use docker`)}
	case c.Sandbox != "docker" && c.Sandbox != "kubernetes" && c.Sandbox != "fake":
		return c, usageError{fmt.Errorf("sandbox %q: want docker or kubernetes", c.Sandbox)}
	case c.Sandbox == "kubernetes":
		if err := c.Kubernetes.check(); err != nil {
			return c, usageError{err}
		}
	case c.MaxAgents <= 0 || c.MaxRuns <= 0 || c.RunAttempts <= 0:
		return c, usageError{errors.New("max-agents, max-runs and run-attempts must be at least 1")}
	}
	if err := checkWorkspaceMode("workspace mode", c.Workspace.Mode); err != nil {
		return c, err
	}
	switch c.Reporters {
	case "auto", "github", "log", "none":
	default:
		return c, usageError{fmt.Errorf("reporters %q: want auto, github, log or none", c.Reporters)}
	}
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = host + ":" + c.Listen
	}
	if c.Secrets.Dir == "" {
		c.Secrets.Dir = filepath.Join(c.DataDir, "secrets")
	}
	return c, nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("log level %q: want debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

func readSecretFile(path, what string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usageError{fmt.Errorf("%s: %w", what, err)}
	}
	return strings.TrimSpace(string(b)), nil
}

// secretEnv reads the daemon's own environment variables that every repository gets.
func secretEnv(names []string) (map[string]string, error) {
	env := map[string]string{}
	for _, n := range names {
		v, ok := os.LookupEnv(n)
		if !ok {
			return nil, usageError{fmt.Errorf("secret-env %s: no such environment variable; export it or drop it from secrets.env", n)}
		}
		env[n] = v
	}
	return env, nil
}

// serve runs the daemon and its HTTP server until ctx ends.
func serve(ctx context.Context, s *streams, c serveConfig) error {
	logger, err := newLogger(s.Err, c.LogFormat, c.LogLevel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w", c.DataDir, err)
	}
	st, err := store.Open(ctx, c.dsn())
	if err != nil {
		return err
	}
	defer st.Close()

	repos, err := daemon.NewRepos(c.Repos)
	if err != nil {
		return usageError{err}
	}
	repos.GitBaseURL, repos.SecretsDir = c.GitBaseURL, c.Secrets.Dir
	if repos.Env, err = secretEnv(c.Secrets.Env); err != nil {
		return err
	}

	var sb runner.Sandbox
	var docker *sandbox.Docker
	var pods *kube.Sandbox
	var initExe string
	switch c.Sandbox {
	case "fake":
		sb = daemon.FakeSandbox{}
		logger.Warn("sandbox fake: agents are not run (test mode)")
	case "kubernetes":
		storeID, err := st.Identity(ctx)
		if err != nil {
			return err
		}
		var stop func()
		if pods, stop, err = c.Kubernetes.start(ctx, sandbox.OwnerLabels(sandbox.DaemonOwner(c.ID), storeID), int64(c.Limits.Disk), logger); err != nil {
			return err
		}
		defer stop()
		// Allow-listed agents get their run's egress proxy as a pod beside them.
		sb = &runner.Containers{Sandbox: pods, Egress: &runner.Egress{Host: pods, Logger: logger, Prices: c.prices()}}
	default:
		storeID, err := st.Identity(ctx)
		if err != nil {
			return err
		}
		// Every object says who made it, so this daemon's start-up sweep, another daemon's or
		// a `runner exec`'s on the same engine removes only what is provably nobody's.
		owner := sandbox.OwnerLabels(sandbox.DaemonOwner(c.ID), storeID)
		initExe = initExecutable(logger)
		docker, err = sandbox.Connect(ctx, sandbox.Options{Logger: logger, Owner: owner, Resources: sandbox.Resources{Disk: int64(c.Limits.Disk)}, InitExecutable: initExe})
		if err != nil {
			return fmt.Errorf("runner serve runs agents in Docker: %w", err)
		}
		sb = &runner.Containers{Sandbox: docker, Egress: &runner.Egress{Client: docker.Client(), Owner: owner, Logger: logger, Prices: c.prices()}}
	}
	wsDir := filepath.Join(c.DataDir, "workspaces")
	mode := workspace.Mode(c.Workspace.Mode)
	if docker != nil {
		if mode, _, err = chooseWorkspaceMode(ctx, docker, c.Workspace.Mode, wsDir, logger); err != nil {
			return err
		}
	} else if mode == workspaceAuto {
		mode = workspace.ModeCheckout // no engine to mount overlays
	} else if pods != nil && mode == workspace.ModeOverlay {
		return usageError{errors.New("workspace mode overlay needs the Docker sandbox; with sandbox kubernetes the pods get full checkouts (workspace: {mode: checkout})")}
	}
	logger.Info("workspaces", "mode", mode)
	// git's fsmonitor hook in overlay workspaces is the same static executable as the init.
	wsm, err := workspace.NewManager(wsDir, workspace.WithLogger(logger), workspace.WithMode(mode), workspace.WithFSMonitor(initExe != ""))
	if err != nil {
		return err
	}
	defer wsm.Close()

	gh, webhookSecret, err := githubClient(ctx, c, logger)
	if err != nil {
		return err
	}
	page, detailsURL, err := runPages(ctx, st, filepath.Join(c.DataDir, "runs"), c.PublicURL, logger)
	if err != nil {
		return err
	}
	liveKey, err := st.Key(ctx, livelog.LiveLogKeyName)
	if err != nil {
		return err
	}
	live := livelog.New(livelog.Options{Store: st, Self: c.ID, RunsDir: filepath.Join(c.DataDir, "runs"), Key: liveKey, Logger: logger})
	defer live.Close()
	pipe := &daemon.GitPipeline{
		Workspaces: wsm,
		Sandbox:    daemon.NewSlotSandbox(sb, c.MaxAgents),
		Repos:      repos,
		GitHub:     gh,
		Logger:     logger,
		RunsDir:    filepath.Join(c.DataDir, "runs"),
		Files:      st,
		Jobs:       st,
		DetailsURL: detailsURL,
		Reporters:  reporterFactory(c, gh, st, logger),
		Limits:     c.jobLimits(),
		Live:       live,
		Workflows:  daemon.StoreWorkflows{Files: st},
		Budgets:    &daemon.DailyBudgets{Store: st, RepoDay: c.Budget.RepoDay},
	}
	if gh != nil {
		pipe.Auth = func(ctx context.Context, repo event.Repo) (workspace.Auth, error) {
			id, err := installationOf(ctx, gh, repo)
			if err != nil {
				return workspace.Auth{}, err
			}
			tok, _, err := gh.Installation(id).Token(ctx)
			return workspace.Auth{Token: tok}, err
		}
	}
	d, err := daemon.New(daemon.Options{
		Store:         st,
		Pipeline:      pipe,
		Repos:         repos,
		Logger:        logger,
		Owner:         c.ID,
		Workers:       c.MaxRuns,
		MaxPerRepo:    c.MaxRunsRepo,
		RunAttempts:   c.RunAttempts,
		LeaseTTL:      c.LeaseTTL,
		ShutdownGrace: c.ShutdownGrace,
		NoSchedules:   !c.Schedules,
		Reap: func(ctx context.Context, p daemon.ReapPolicy) error {
			var errs []error
			if docker != nil && !p.Periodic {
				if _, err := docker.Reap(ctx, p.Remove); err != nil {
					errs = append(errs, err)
				}
			}
			if pods != nil {
				// A pod of a run not yet completed stays: the run will be taken up again
				// (here or by another daemon) and its jobs attach to their pods. A completed
				// run's pods can go any time: periodically too, which gives the pods of a
				// daemon that died after its run ended a time to live.
				remove := func(l sandbox.Leftover) bool {
					if !p.Remove(l) {
						return false
					}
					r, err := st.GetRun(ctx, l.RunID)
					return errors.Is(err, store.ErrNotFound) || err == nil && r.Status == store.RunCompleted
				}
				if _, err := pods.Sweep(ctx, remove); err != nil {
					errs = append(errs, err)
				}
			}
			if p.Periodic {
				return errors.Join(errs...)
			}
			if _, err := wsm.Sweep(ctx, p.Busy); err != nil {
				errs = append(errs, err)
			}
			return errors.Join(errs...)
		},
	})
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := d.Metrics().Register(reg); err != nil {
		return err
	}
	mux := http.NewServeMux()
	api := &server.API{Store: st, Dispatcher: d, RunsDir: filepath.Join(c.DataDir, "runs"), Gatherer: reg, Logger: logger, Logs: live}
	api.Routines = d
	api.Register(mux)
	page.Register(mux)
	live.Register(mux)
	ui := &web.UI{Store: st, Controller: uiControl{d}, RunsDir: filepath.Join(c.DataDir, "runs"), PublicURL: c.PublicURL, Logger: logger, Logs: live}
	if ui.GitHub, err = githubSignIn(ctx, c, gh, st); err != nil {
		return err
	}
	ui.Routines, ui.Dispatcher = d, uiDispatch{d}
	ui.Register(mux)
	health := func(ctx context.Context) error {
		if d.Draining() {
			return daemon.ErrDraining
		}
		_, err := st.CountRunning(ctx, "")
		return err
	}
	if webhookSecret != "" {
		srv, err := server.New(server.Config{WebhookSecret: []byte(webhookSecret), Queue: d, Health: health, Logger: logger})
		if err != nil {
			return err
		}
		mux.Handle(server.WebhookPath, srv)
		mux.Handle("GET /healthz", srv)
	} else {
		logger.Warn("no GitHub webhook secret: /webhooks/github is off (dispatch, hooks and schedules still work)")
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
			if err := health(r.Context()); err != nil {
				http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			_, _ = io.WriteString(w, "ok\n")
		})
	}

	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Listen, err)
	}
	internalURL := c.InternalURL
	if internalURL == "" {
		internalURL = defaultInternalURL(ln.Addr())
	}
	if err := st.SetDaemonAddr(ctx, c.ID, internalURL); err != nil {
		return err
	}
	httpSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server", "err", err)
		}
	}()
	logger.Info("listening", "addr", ln.Addr().String(), "internal_url", internalURL, "database", redactDSN(c.dsn()), "sandbox", c.Sandbox, "id", c.ID)
	runErr := d.Run(ctx)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = httpSrv.Shutdown(sctx)
	return runErr
}

// runPages makes the daemon's signed run summary pages, and the link that a run's check run,
// pull request and comment carry: the run's page in the control room (web.RunURL), which links
// the summary page's readers on to it as well (nil without a public URL: no link).
func runPages(ctx context.Context, st store.Store, runsDir, publicURL string, logger *slog.Logger) (*server.RunPage, func(runID string) string, error) {
	key, err := st.Key(ctx, server.RunPageKeyName)
	if err != nil {
		return nil, nil, err
	}
	page := &server.RunPage{Store: st, RunsDir: runsDir, Key: key, Logger: logger}
	if publicURL == "" {
		return page, nil, nil
	}
	return page, func(runID string) string { return web.RunURL(publicURL, runID) }, nil
}

// defaultInternalURL is where the other daemons of the fleet reach this one when
// --internal-url is not given: the listener's address, or the host's name where the listener
// takes any address.
func defaultInternalURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

func redactDSN(dsn string) string {
	if i := strings.Index(dsn, "@"); i > 0 && strings.Contains(dsn[:i], "://") {
		scheme, _, _ := strings.Cut(dsn, "://")
		return scheme + "://…" + dsn[i:]
	}
	return dsn
}

// githubClient builds the GitHub client when credentials are configured (nil otherwise) and
// returns the webhook secret.
func githubClient(ctx context.Context, c serveConfig, logger *slog.Logger) (*github.Client, string, error) {
	secret := c.GitHub.WebhookSecret
	if secret == "" {
		var err error
		if secret, err = readSecretFile(c.GitHub.WebhookSecretFile, "github webhook-secret-file"); err != nil {
			return nil, "", err
		}
	}
	tok := c.GitHub.Token
	if tok == "" {
		var err error
		if tok, err = readSecretFile(c.GitHub.TokenFile, "github token-file"); err != nil {
			return nil, "", err
		}
	}
	cfg := github.Config{BaseURL: c.GitHub.APIURL, Token: tok, AppID: c.GitHub.AppID, Logger: logger}
	if c.GitHub.AppID != 0 {
		key, err := os.ReadFile(c.GitHub.PrivateKeyFile)
		if err != nil {
			return nil, "", usageError{fmt.Errorf("github private-key-file (needed with app-id): %w", err)}
		}
		cfg.PrivateKeyPEM = key
	}
	if cfg.Token == "" && cfg.AppID == 0 {
		return nil, secret, nil
	}
	gh, err := github.NewClient(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	return gh, secret, nil
}

func installationOf(ctx context.Context, gh *github.Client, repo event.Repo) (int64, error) {
	if !gh.IsApp() {
		return 0, nil
	}
	return gh.RepoInstallation(ctx, repo.Owner, repo.Name)
}

// reporterFactory makes each run's reporters: GitHub check run, pull request and comment when
// GitHub is configured, and a log line per run state otherwise.
func reporterFactory(c serveConfig, gh *github.Client, files reporters.RunFiles, logger *slog.Logger) func(*reporters.RunInfo, string) reporters.Reporter {
	mode := c.Reporters
	if mode == "auto" {
		mode = "log"
		if gh != nil {
			mode = "github"
		}
	}
	switch mode {
	case "none":
		return nil
	case "log":
		return func(info *reporters.RunInfo, _ string) reporters.Reporter { return logReporter{logger} }
	}
	return func(info *reporters.RunInfo, repoDir string) reporters.Reporter {
		ev := info.Event
		id := ev.InstallationID
		if id == 0 && gh.IsApp() {
			var err error
			if id, err = gh.RepoInstallation(context.Background(), ev.Repo.Owner, ev.Repo.Name); err != nil {
				logger.Warn("no GitHub installation for the repository: not reporting", "repo", ev.Repo.FullName(), "err", err)
				return logReporter{logger}
			}
		}
		inst := gh.Installation(id)
		remote := ev.Repo.CloneURL
		token := func(ctx context.Context) (string, error) {
			if strings.HasPrefix(remote, "file://") {
				return "", nil
			}
			t, _, err := inst.Token(ctx)
			return t, err
		}
		return append(reporters.Multi{logReporter{logger}}, reporters.ForGitHub(info, reporters.GitHubTarget{
			REST: inst.REST(), RepoDir: repoDir, RemoteURL: remote, Token: token, Logger: logger, Files: files})...)
	}
}

// logReporter writes a log line when a run is queued, starts and finishes.
type logReporter struct{ log *slog.Logger }

func (l logReporter) Report(_ context.Context, u reporters.Update) error {
	switch u.Kind {
	case reporters.RunStarted:
		l.log.Info("run in progress", "run_id", u.Run.ID, "repo", u.Run.Repo, "routine", u.Run.Plan.Routine)
	case reporters.JobFinished:
		l.log.Info("job finished", "run_id", u.Run.ID, "job", u.Job.ID, "outcome", u.Job.Outcome)
	case reporters.RunFinished:
		l.log.Info("run concluded", "run_id", u.Run.ID, "repo", u.Run.Repo, "routine", u.Run.Plan.Routine, "conclusion", u.Result.Conclusion)
	}
	return nil
}
