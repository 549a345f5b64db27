package githublogin

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Action is what a signed-in person asks to do on a repository.
type Action int

const (
	// View covers reading runs, logs, reports and patches.
	View Action = iota
	// Steer covers dispatching, cancelling and re-running: it changes what runs on the
	// repository's behalf, so it needs write access, as pushing would.
	Steer
)

// Roles answers what a person may do on a repository from their role there, read through the
// App installation (GET /repos/{owner}/{repo}/collaborators/{username}/permission). Answers are
// cached for TTL so a page listing many runs costs one call per repository and person, and a
// role taken away on GitHub takes effect within TTL.
type Roles struct {
	// Lookup returns the person's role: admin, maintain, write, triage, read or none.
	Lookup func(ctx context.Context, owner, repo, login string) (string, error)
	// TTL is how long an answer is kept (default one minute).
	TTL time.Duration

	mu    sync.Mutex
	now   func() time.Time
	cache map[string]cachedRole
}

type cachedRole struct {
	role    string
	expires time.Time
}

// Can reports whether login may do act on owner/repo. An error reaching GitHub denies and is
// returned, so a page can say why rather than show an empty list.
func (r *Roles) Can(ctx context.Context, login, owner, repo string, act Action) (bool, error) {
	role, err := r.role(ctx, login, owner, repo)
	if err != nil {
		return false, err
	}
	switch role {
	case "admin", "maintain", "write":
		return true, nil
	case "triage", "read":
		return act == View, nil
	}
	return false, nil
}

func (r *Roles) role(ctx context.Context, login, owner, repo string) (string, error) {
	key := login + "\x00" + owner + "/" + repo
	r.mu.Lock()
	if r.now == nil {
		r.now = time.Now
	}
	now := r.now()
	if c, ok := r.cache[key]; ok && now.Before(c.expires) {
		r.mu.Unlock()
		return c.role, nil
	}
	r.mu.Unlock()

	role, err := r.Lookup(ctx, owner, repo, login)
	if err != nil {
		return "", fmt.Errorf("read %s's role on %s/%s from GitHub: %w", login, owner, repo, err)
	}
	ttl := r.TTL
	if ttl <= 0 {
		ttl = time.Minute
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cache == nil {
		r.cache = map[string]cachedRole{}
	}
	// Bound the cache: a daemon with many people and repositories must not grow without end.
	if len(r.cache) >= 10_000 {
		for k, c := range r.cache {
			if !now.Before(c.expires) {
				delete(r.cache, k)
			}
		}
		if len(r.cache) >= 10_000 {
			r.cache = map[string]cachedRole{}
		}
	}
	r.cache[key] = cachedRole{role: role, expires: now.Add(ttl)}
	return role, nil
}
