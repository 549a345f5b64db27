package daemon

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/agentrunner/agentrunner/runner/event"
)

// Repo is a repository the daemon serves. Repositories that deliver GitHub webhooks need no
// entry; an entry overrides where to fetch from (a local path or file:// URL serves a repository
// without GitHub) and makes the repository's schedules known from the start.
type Repo struct {
	// Name is owner/name.
	Name string `yaml:"name"`
	// URL is the clone URL: https://…, file:///path, or a local path. Empty: the event's clone
	// URL, or <git-base-url>/<owner>/<name>.git.
	URL string `yaml:"url,omitempty"`
	// DefaultBranch is the branch whose routines are scheduled and dispatched; empty: the
	// remote's HEAD.
	DefaultBranch string `yaml:"default-branch,omitempty"`
}

// Repos resolves repositories and their secrets.
type Repos struct {
	// GitBaseURL prefixes owner/name.git for repositories without a URL (default
	// https://github.com).
	GitBaseURL string
	// SecretsDir holds one file per repository, <owner>/<name>.env, NAME=value lines.
	SecretsDir string
	// Env are secrets every repository receives (from the daemon's environment).
	Env map[string]string

	mu     sync.RWMutex
	byName map[string]Repo
}

// NewRepos makes a Repos from configured entries; it rejects malformed names.
func NewRepos(list []Repo) (*Repos, error) {
	r := &Repos{byName: map[string]Repo{}}
	for i, e := range list {
		owner, name, ok := strings.Cut(e.Name, "/")
		if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("repos[%d]: name %q: want owner/name", i, e.Name)
		}
		if e.URL != "" && !strings.Contains(e.URL, "://") {
			abs, err := filepath.Abs(e.URL)
			if err != nil {
				return nil, fmt.Errorf("repos[%d] (%s): url %q: %w", i, e.Name, e.URL, err)
			}
			e.URL = "file://" + abs
		}
		if _, dup := r.byName[e.Name]; dup {
			return nil, fmt.Errorf("repos[%d]: %s is listed twice", i, e.Name)
		}
		r.byName[e.Name] = e
	}
	return r, nil
}

// Known lists the configured repositories by name.
func (r *Repos) Known() []Repo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Repo, 0, len(r.byName))
	for _, e := range r.byName {
		out = append(out, e)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// Lookup returns the configured entry for owner/name.
func (r *Repos) Lookup(fullName string) (Repo, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.byName[fullName]
	return e, ok
}

// Learn records a repository seen in a delivery, so its schedules become known.
func (r *Repos) Learn(repo event.Repo) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byName[repo.FullName()]; ok {
		return false
	}
	r.byName[repo.FullName()] = Repo{Name: repo.FullName(), URL: repo.CloneURL, DefaultBranch: repo.DefaultBranch}
	return true
}

// CloneURL is where repo is fetched from.
func (r *Repos) CloneURL(repo event.Repo) string {
	if e, ok := r.Lookup(repo.FullName()); ok && e.URL != "" {
		return e.URL
	}
	if repo.CloneURL != "" {
		return repo.CloneURL
	}
	base := r.GitBaseURL
	if base == "" {
		base = "https://github.com"
	}
	return strings.TrimSuffix(base, "/") + "/" + repo.FullName() + ".git"
}

// EventRepo is the event.Repo of a configured or learned repository.
func (r *Repos) EventRepo(fullName string) (event.Repo, error) {
	owner, name, ok := strings.Cut(fullName, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return event.Repo{}, fmt.Errorf("repository %q: want owner/name", fullName)
	}
	repo := event.Repo{Owner: owner, Name: name}
	if e, ok := r.Lookup(fullName); ok {
		repo.DefaultBranch = e.DefaultBranch
	}
	repo.CloneURL = r.CloneURL(repo)
	return repo, nil
}

// Secrets returns the values the runner holds for repo: the shared environment secrets, then
// its own file, which wins.
func (r *Repos) Secrets(fullName string) (map[string]string, error) {
	out := make(map[string]string, len(r.Env))
	for k, v := range r.Env {
		out[k] = v
	}
	if r.SecretsDir == "" {
		return out, nil
	}
	owner, name, _ := strings.Cut(fullName, "/")
	if owner == "" || name == "" || strings.ContainsAny(owner+name, `/\`) || owner == ".." || name == ".." {
		return nil, fmt.Errorf("secrets of %q: not an owner/name", fullName)
	}
	file := filepath.Join(r.SecretsDir, owner, name+".env")
	vals, err := ReadEnvFile(file)
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for k, v := range vals {
		out[k] = v
	}
	return out, nil
}

// ReadEnvFile reads NAME=value lines; blank lines and # comments are skipped.
func ReadEnvFile(file string) (map[string]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%s:%d: want NAME=value", file, n)
		}
		out[strings.TrimSpace(k)] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return out, nil
}
