package runner

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/connectors"
	"github.com/agentrunner/agentrunner/egress"
	"github.com/agentrunner/agentrunner/preset"
	"github.com/agentrunner/agentrunner/runner/plan"
)

// splitConnectors sorts the run's connectors into the remote ones the proxy serves and the
// local ones that get a sidecar, with the secret values each needs. A connector whose secret
// the run does not hold (a fork's pull request gets none) is not offered; r.unavailable says
// why, and every job that would use it is told so in its log.
func (r *egressRun) splitConnectors(p *plan.Run, secrets map[string]string) ([]egress.Connector, []*config.Connector) {
	held := func(name string) (string, bool) {
		if !slices.Contains(p.Secrets, name) {
			return "", false
		}
		v, ok := secrets[name]
		return v, ok
	}
	noSecret := func(name string) string {
		return fmt.Sprintf("the run does not hold its secret %s (runs of pull requests from forks get no secrets)", name)
	}
	var remote []egress.Connector
	var locals []*config.Connector
	for _, c := range p.Connectors {
		if c.URL != "" {
			var val string
			if c.Secret != "" {
				v, ok := held(c.Secret)
				if !ok {
					r.unavailable[c.Name] = noSecret(c.Secret)
					continue
				}
				val = v
			}
			remote = append(remote, egress.Connector{Name: c.Name, URL: c.URL, Secret: val, Tools: c.Tools})
			r.remote[c.Name] = true
			continue
		}
		ok := true
		for _, s := range c.Secrets {
			if _, has := held(s); !has {
				r.unavailable[c.Name] = noSecret(s)
				ok = false
				break
			}
		}
		if ok {
			locals = append(locals, c)
		}
	}
	return remote, locals
}

// startConnectors starts the sidecars of the run's local connectors on its internal network.
// A connector with an allow list of its own reaches it through the run's proxy.
func (e *Egress) startConnectors(ctx context.Context, runID string, eg *egress.Egress, locals []*config.Connector, secrets map[string]string) (*connectors.Set, error) {
	internal, _ := eg.Networks()
	specs := make([]connectors.Local, 0, len(locals))
	for _, c := range locals {
		env := maps.Clone(c.Env)
		if env == nil {
			env = map[string]string{}
		}
		for _, s := range c.Secrets {
			env[s] = secrets[s]
		}
		l := connectors.Local{Name: c.Name, Image: c.Image, Command: c.Command, Env: env, Tools: c.Tools}
		if c.Network != nil && c.Network.Mode == config.NetworkAllow {
			cfg, err := eg.AgentConfig(ctx, egress.Agent{JobID: "connector " + c.Name, Allow: c.Network.Allow})
			if err != nil {
				return nil, fmt.Errorf("connector %s: %w", c.Name, err)
			}
			l.ProxyEnv = cfg.Env
		}
		specs = append(specs, l)
	}
	set, err := connectors.Start(ctx, e.Client, connectors.Spec{RunID: runID, Network: internal, Executable: e.Executable,
		Owner: e.Owner, Logger: e.Logger}, specs)
	if err != nil {
		return nil, fmt.Errorf("start the run's connectors: %w", err)
	}
	return set, nil
}

// wireConnectors gives a job its connectors: $AGENT_MCP_CONFIG (every agent), and the
// preset's own flags, environment and files. env is the job's own copy.
func wireConnectors(outDir string, ps *preset.Preset, argv []string, env map[string]string, servers []preset.MCPServer) ([]string, error) {
	if err := os.WriteFile(filepath.Join(outDir, filepath.Base(preset.MCPConfigFile)), preset.MCPConfig(servers), 0o644); err != nil {
		return nil, fmt.Errorf("write the job's MCP configuration: %w", err)
	}
	env[preset.EnvMCPConfig] = preset.MCPConfigFile
	if ps == nil {
		return argv, nil
	}
	argv, w, err := ps.WithConnectors(argv, servers)
	if err != nil {
		return nil, err
	}
	maps.Copy(env, w.Env)
	for name, data := range w.Files {
		if err := os.WriteFile(filepath.Join(outDir, filepath.Base(name)), data, 0o644); err != nil {
			return nil, fmt.Errorf("write %s for the job's connectors: %w", name, err)
		}
	}
	return argv, nil
}
