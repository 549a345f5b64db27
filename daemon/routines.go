package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/agentrunner/agentrunner/config"
)

// ConfigTTL is how long a repository's routines read at its default branch are served before
// a read fetches the branch again. Pushes to the default branch (webhooks), dispatches and hook
// calls refresh them sooner; the TTL covers repositories served without webhooks.
const ConfigTTL = 5 * time.Minute

// configFetchTimeout bounds one fetch of a default branch for DefaultConfig.
const configFetchTimeout = 2 * time.Minute

// defaultConfigs remembers, per repository, the routines the daemon last read at its default
// branch, so that pages and API calls listing routines do not fetch from the forge each time.
type defaultConfigs struct {
	mu      sync.Mutex
	byRepo  map[string]defaultConfig
	loading map[string]*configLoad // one fetch per repository at a time
}

type defaultConfig struct {
	cfg         *config.Config
	sha, branch string
	at          time.Time
}

type configLoad struct {
	done chan struct{}
	err  error
}

// remember records what a read of repo's default branch found.
func (c *defaultConfigs) remember(repo, sha, branch string, cfg *config.Config, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byRepo == nil {
		c.byRepo = map[string]defaultConfig{}
	}
	c.byRepo[repo] = defaultConfig{cfg: cfg, sha: sha, branch: branch, at: at}
}

func (c *defaultConfigs) get(repo string) (defaultConfig, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byRepo[repo]
	return e, ok
}

// RepoNames lists the repositories the daemon serves: those configured and those it learned
// from webhook deliveries, sorted.
func (d *Daemon) RepoNames() []string {
	known := d.o.Repos.Known()
	out := make([]string, len(known))
	for i, r := range known {
		out[i] = r.Name
	}
	return out
}

// DefaultConfig returns repo's routines at its default branch, the branch's tip and its name,
// as last read (by the scheduler, a dispatch or a hook call) when that was less than ConfigTTL
// ago; otherwise it fetches the branch and reads them now. When that fetch fails, routines
// read before are served rather than none.
func (d *Daemon) DefaultConfig(ctx context.Context, repo string) (*config.Config, string, string, error) {
	if _, ok := d.o.Repos.Lookup(repo); !ok {
		return nil, "", "", reqErr(404, "this runner does not serve %s", repo)
	}
	e, ok := d.configs.get(repo)
	if ok && d.o.Now().Sub(e.at) < ConfigTTL {
		return e.cfg, e.sha, e.branch, nil
	}
	err := d.loadDefaultConfig(ctx, repo)
	if e2, ok2 := d.configs.get(repo); ok2 && (err == nil || ok) {
		if err != nil {
			d.log.Warn("routines: serving the ones read before", "repo", repo, "read_at", e2.at, "err", err)
		}
		return e2.cfg, e2.sha, e2.branch, nil
	}
	if err == nil {
		err = fmt.Errorf("the routines of %s were not recorded", repo)
	}
	return nil, "", "", err
}

// loadDefaultConfig fetches repo's default branch and reads its routines; concurrent calls for
// one repository share one fetch.
func (d *Daemon) loadDefaultConfig(ctx context.Context, repo string) error {
	c := &d.configs
	c.mu.Lock()
	if l, ok := c.loading[repo]; ok {
		c.mu.Unlock()
		select {
		case <-l.done:
			return l.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l := &configLoad{done: make(chan struct{})}
	if c.loading == nil {
		c.loading = map[string]*configLoad{}
	}
	c.loading[repo] = l
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.loading, repo)
		c.mu.Unlock()
		close(l.done)
	}()
	// The fetch is shared: it must not end with the page view that happened to start it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), configFetchTimeout)
	defer cancel()
	l.err = func() error {
		ev, err := d.o.Repos.EventRepo(repo)
		if err != nil {
			return err
		}
		sha, branch, err := d.o.Pipeline.Head(ctx, ev)
		if err != nil {
			return fmt.Errorf("read the default branch of %s: %w", repo, err)
		}
		ev.DefaultBranch = branch
		cfg, err := d.o.Pipeline.Config(ctx, ev, sha)
		if err != nil {
			return err
		}
		d.hooks.learn(repo, cfg)
		d.configs.remember(repo, sha, branch, cfg, d.o.Now())
		return nil
	}()
	return l.err
}
