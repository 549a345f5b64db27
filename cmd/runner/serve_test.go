package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentrunner/agentrunner/runner"
)

// writeFile writes content to a file of its own and returns its name.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "runner.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The documented example parses with every key known, and precedence is flag > env > file.
func TestServeSettings(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c serveConfig)
		fails bool
	}{
		{
			name: "the example file is read as documented",
			args: []string{"--config", "../../examples/runner.yaml"},
			check: func(t *testing.T, c serveConfig) {
				want := serveConfig{Listen: "127.0.0.1:8080", MaxAgents: 8, MaxRuns: 16, MaxRunsRepo: 4, RunAttempts: 3,
					LeaseTTL: 30 * time.Second, ShutdownGrace: 5 * time.Minute, LogFormat: "json"}
				got := serveConfig{Listen: c.Listen, MaxAgents: c.MaxAgents, MaxRuns: c.MaxRuns, MaxRunsRepo: c.MaxRunsRepo,
					RunAttempts: c.RunAttempts, LeaseTTL: c.LeaseTTL, ShutdownGrace: c.ShutdownGrace, LogFormat: c.LogFormat}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("settings (-want +got):\n%s", d)
				}
				if l := c.jobLimits(); c.Limits.Disk != 2<<30 || l != (runner.Limits{ChangedFile: 10 << 20, Patch: 50 << 20, Log: 10 << 20}) {
					t.Errorf("limits: disk %d, job %+v", c.Limits.Disk, l)
				}
				if c.GitHub.AppID != 123456 || len(c.Repos) != 2 || c.Repos[1].URL != "/srv/git/local-only.git" {
					t.Errorf("github/repos = %+v %+v", c.GitHub, c.Repos)
				}
			},
		},
		{
			name: "environment beats the file and flags beat the environment",
			args: []string{"--config", "../../examples/runner.yaml", "--max-agents", "3"},
			env:  map[string]string{"AGENTRUNNER_MAX_AGENTS": "5", "AGENTRUNNER_MAX_RUNS": "7", "AGENTRUNNER_LOG_FORMAT": "text"},
			check: func(t *testing.T, c serveConfig) {
				if c.MaxAgents != 3 || c.MaxRuns != 7 || c.LogFormat != "text" {
					t.Errorf("max-agents %d max-runs %d log-format %s, want 3, 7, text", c.MaxAgents, c.MaxRuns, c.LogFormat)
				}
			},
		},
		{
			name: "defaults put SQLite in the data dir",
			args: []string{"--data-dir", "/tmp/x"},
			check: func(t *testing.T, c serveConfig) {
				if c.dsn() != "sqlite:///tmp/x/runner.db" || c.Secrets.Dir != filepath.Join("/tmp/x", "secrets") {
					t.Errorf("dsn %s secrets %s", c.dsn(), c.Secrets.Dir)
				}
			},
		},
		{
			name: "the workspace mode comes from the file, the environment or the flag",
			args: []string{"--config", writeFile(t, "workspace:\n  mode: checkout\n")},
			check: func(t *testing.T, c serveConfig) {
				if c.Workspace.Mode != "checkout" {
					t.Errorf("workspace mode %q, want checkout", c.Workspace.Mode)
				}
			},
		},
		{
			name: "the workspace mode defaults to auto",
			check: func(t *testing.T, c serveConfig) {
				if c.Workspace.Mode != "auto" {
					t.Errorf("workspace mode %q, want auto", c.Workspace.Mode)
				}
			},
		},
		{
			name: "the kubernetes sandbox reads its block",
			args: []string{"--config", writeFile(t, "sandbox: kubernetes\nkubernetes:\n  namespace: agents\n  runner-image: localhost/agentrunner/runner:1\n"+
				"  exchange-listen: 0.0.0.0:8091\n  exchange-url: http://10.0.0.5:8091\n  node-selector: {pool: agents}\n"+
				"  tolerations: [{key: dedicated, operator: Equal, value: agents, effect: NoSchedule}]\n  runner-in-agent-images: true\n")},
			check: func(t *testing.T, c serveConfig) {
				want := kubeConfig{Namespace: "agents", RunnerImage: "localhost/agentrunner/runner:1", ExchangeListen: "0.0.0.0:8091", ExchangeURL: "http://10.0.0.5:8091",
					NodeSelector: map[string]string{"pool": "agents"}, Tolerations: []toleration{{Key: "dedicated", Operator: "Equal", Value: "agents", Effect: "NoSchedule"}},
					RunnerInAgentImages: true}
				if d := cmp.Diff(want, c.Kubernetes); c.Sandbox != "kubernetes" || d != "" {
					t.Errorf("sandbox %s, kubernetes (-want +got):\n%s", c.Sandbox, d)
				}
				if tl := c.Kubernetes.tolerations(); len(tl) != 1 || tl[0].Effect != "NoSchedule" || tl[0].Operator != "Equal" {
					t.Errorf("tolerations %+v", tl)
				}
			},
		},
		{name: "the kubernetes sandbox without its block is refused", args: []string{"--sandbox", "kubernetes"}, fails: true},
		{name: "an unknown sandbox is refused", args: []string{"--sandbox", "podman"}, fails: true},
		{name: "a bad workspace mode is refused", env: map[string]string{"AGENTRUNNER_WORKSPACE_MODE": "cow"}, fails: true},
		{name: "a bad log format is refused", args: []string{"--log-format", "xml"}, fails: true},
		{name: "a bad size in the file is refused", args: []string{"--config", writeFile(t, "limits:\n  patch: 50 megs\n")}, fails: true},
		{name: "a bad duration in the environment is refused", env: map[string]string{"AGENTRUNNER_LEASE_TTL": "soon"}, fails: true},
		// `go test` builds without the agentrunner_testonly tag, like a release.
		{name: "a production build refuses the fake sandbox", args: []string{"--sandbox", "fake"}, fails: true},
		{name: "a production build refuses the fake sandbox from the environment", env: map[string]string{"AGENTRUNNER_SANDBOX": "fake"}, fails: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cmd := newServeCmd(&streams{Out: os.Stdout, Err: os.Stderr})
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			o := &serveOptions{}
			o.Config, _ = cmd.Flags().GetString("config")
			o.DataDir, _ = cmd.Flags().GetString("data-dir")
			c, err := o.settings(cmd.Flags())
			if tc.fails {
				if err == nil {
					t.Fatal("settings accepted, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}
