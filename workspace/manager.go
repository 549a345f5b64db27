package workspace

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
)

// Names of the entries in a Manager's root that are not runs.
const (
	mirrorsDir = "mirrors"
	trashDir   = ".trash"
	homeDir    = ".home"
	tmpDir     = ".tmp"
	sharedDir  = ".shared"
)

// Option configures a Manager.
type Option func(*Manager)

// WithLogger makes the Manager log what it does (creation, removal, sweeping, fetches) to l.
func WithLogger(l *slog.Logger) Option {
	return func(m *Manager) { m.log = l }
}

// Manager creates and removes workspaces under one data directory, laid out as
//
//	<root>/<runID>/<job>/repo      the workspace (checkout mode: bind-mount this)
//	<root>/<runID>/<job>/upper     the job's upper layer (overlay mode), and beside it
//	<root>/<runID>/<job>/work      the overlay's work directory
//	<root>/<runID>/<job>/private   the runner's own git directory for reading changes back
//	<root>/.shared/<key>/tree      overlay mode: the read-only checkout of one commit shared by
//	                               its jobs (the lower layer), with users/<runID>/<job> markers
//	<root>/mirrors/<name>          bare mirrors of remote repositories
//	<root>/.trash/                 removed workspaces still being deleted
//
// so that a crashed run's leftovers are found by run id and swept. A Manager is safe for
// concurrent use. Close waits for background deletions.
type Manager struct {
	root string
	log  *slog.Logger
	git  gitRunner
	mode Mode
	// fsmonitor: shared checkouts are made ready for git's fsmonitor hook (WithFSMonitor).
	fsmonitor bool

	// sharedMu serialises, per shared checkout key, filling, joining and leaving it within
	// this process (a file lock does it between processes).
	sharedMu sync.Map // key → *sync.Mutex

	bg      sync.WaitGroup
	mu      sync.Mutex
	pending map[string]bool // trash entries being deleted by this process

	// sources caches what Create looks up about a source repository, so that creating the
	// hundredth workspace of a fan-out runs only the git commands that must run.
	sources sync.Map // repoDir → *sourceInfo
}

// sourceInfo is what does not change about a source repository while a Manager runs: its
// object store and its origin URL, and the commits that full ids already resolved to.
type sourceInfo struct {
	once      sync.Once
	common    string
	originURL string
	err       error
	commits   sync.Map // full sha → struct{}
}

// source returns the cached facts about repoDir.
func (m *Manager) source(ctx context.Context, repoDir string) (*sourceInfo, error) {
	v, _ := m.sources.LoadOrStore(repoDir, &sourceInfo{})
	si := v.(*sourceInfo)
	si.once.Do(func() {
		if si.common, si.err = m.git.commonDir(ctx, repoDir); si.err != nil {
			return
		}
		// The clone's origin would be a host path; agents see the source's own remote instead
		// (credentials stripped), so remote-tracking branches stay meaningful.
		si.originURL = "https://invalid.agentrunner/local-source"
		if u, err := m.git.out(ctx, repoDir, "config", "--get", "remote.origin.url"); err == nil && u != "" {
			si.originURL = userinfoRE.ReplaceAllString(u, "${1}")
		}
	})
	if si.err != nil {
		// A failed lookup (a cancelled context, a repository not there yet) is not cached.
		m.sources.CompareAndDelete(repoDir, si)
		return nil, si.err
	}
	return si, nil
}

// resolve returns the full id of sha in the source, skipping git for a full id seen before.
func (m *Manager) resolve(ctx context.Context, si *sourceInfo, repoDir, sha string) (string, error) {
	if _, ok := si.commits.Load(sha); ok {
		return sha, nil
	}
	full, err := m.git.resolveCommit(ctx, repoDir, sha)
	if err != nil {
		return "", err
	}
	if full == sha {
		si.commits.Store(sha, struct{}{})
	}
	return full, nil
}

// NewManager returns a Manager keeping everything under root, which it creates (mode 0700) if
// needed.
func NewManager(root string, opts ...Option) (*Manager, error) {
	if root == "" {
		return nil, errors.New("workspace root is empty")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("resolve workspace root %q: %w", root, err)
	}
	m := &Manager{root: abs, log: slog.New(slog.DiscardHandler), pending: map[string]bool{}, mode: ModeCheckout}
	for _, o := range opts {
		o(m)
	}
	if _, err := ParseMode(string(m.mode)); err != nil {
		return nil, err
	}
	for _, d := range []string{abs, filepath.Join(abs, homeDir), filepath.Join(abs, trashDir), filepath.Join(abs, tmpDir), filepath.Join(abs, sharedDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create workspace directory %s: %w", d, err)
		}
	}
	m.git = newGitRunner(filepath.Join(abs, homeDir))
	sweepTempHomes()
	return m, nil
}

// Root returns the Manager's data directory.
func (m *Manager) Root() string { return m.root }

// Close waits until every workspace removed in the background is deleted from disk.
func (m *Manager) Close() error {
	m.bg.Wait()
	return nil
}

// Owner is the numeric user and group the container runs as. Create gives it the workspace.
type Owner struct {
	UID, GID int
}

// Source says what a workspace starts from.
type Source struct {
	// RepoDir is a local repository (a checkout, or a bare mirror from Mirror).
	RepoDir string
	// SHA is the commit to check out; empty means RepoDir's HEAD.
	SHA string
	// IncludeUncommitted starts from RepoDir's working tree as it is now (tracked changes,
	// deletions, untracked files that are not ignored) instead of HEAD; see Snapshot.
	IncludeUncommitted bool
}

// Workspace is one job's git repository. In checkout mode Path is what the container mounts at
// /workspace; in overlay mode the container mounts Layers as an overlay there.
type Workspace struct {
	m       *Manager
	runID   string
	jobID   string
	dir     string // <root>/<runID>/<job>
	path    string // dir/repo, or in overlay mode dir/upper
	private string // dir/private: git dir with alternates to the source's objects
	base    string
	branch  string

	// Overlay mode only: the shared checkout under the job's upper layer, and the overlay's
	// work directory. joined says the job is recorded as a user of shared (read after filled).
	shared *sharedCheckout
	work   string
	joined bool

	filled   chan struct{} // closed when the background fill has ended
	fillErr  error         // why the fill failed; read after filled is closed
	stopFill context.CancelFunc

	removeOnce sync.Once
	removeErr  error
}

// Path returns, in checkout mode, the workspace's working tree (a complete git repository with
// its .git directory). In overlay mode it returns the job's upper layer: only what the job
// wrote, with overlay whiteouts for what it deleted; the sandbox mounts Layers instead.
func (w *Workspace) Path() string { return w.path }

// BaseSHA returns the commit the workspace started from: Source.SHA, or with IncludeUncommitted
// the snapshot commit holding the uncommitted state. Changes are computed against it.
func (w *Workspace) BaseSHA() string { return w.base }

// Branch returns the branch checked out in the workspace, agentrunner/<job>, which starts at
// BaseSHA. Agents committing inside the workspace advance it.
func (w *Workspace) Branch() string { return w.branch }

// ContainerEnv returns environment variables for the container so that git inside it trusts the
// workspace even when its files belong to another uid: git ignores safe.directory in a
// repository's own config, but honours it from GIT_CONFIG_* variables.
func (w *Workspace) ContainerEnv() []string {
	return []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=safe.directory", "GIT_CONFIG_VALUE_0=*"}
}

var runIDRE = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

func checkRunID(runID string) error {
	if !runIDRE.MatchString(runID) || runID == mirrorsDir || runID == sharedDir {
		return fmt.Errorf("run id %q is not usable as a directory name (letters, digits, '.', '_', '-'; not starting with '.'; not %q)", runID, mirrorsDir)
	}
	return nil
}

var unsafeNameRE = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// sanitizeName turns s into a file and branch name. When characters had to be replaced a short
// hash of s is appended, so "a/b" and "a_b" stay distinct.
func sanitizeName(s string) string {
	clean := strings.Trim(unsafeNameRE.ReplaceAllString(s, "_"), "._")
	if len(clean) > 80 {
		clean = clean[:80]
	}
	if clean == s {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	if clean == "" {
		return "job-" + hex.EncodeToString(sum[:4])
	}
	return clean + "-" + hex.EncodeToString(sum[:4])
}

// Create makes the workspace of job jobID of run runID: a clone of src.RepoDir whose objects are
// hard links to the source's (no copy, no alternates path the container could not see), with
// branch agentrunner/<job> checked out at the commit. With owner, the tree belongs to
// owner.UID:GID; object files shared by hard link keep their owner and stay read-only, except
// those owner would own, which are copied so the container cannot rewrite the source's objects.
// Create fails if the workspace already exists. On failure nothing is left behind.
//
// Create is Start followed by Ready.
func (m *Manager) Create(ctx context.Context, src Source, runID, jobID string, owner *Owner) (*Workspace, error) {
	w, err := m.Start(ctx, src, runID, jobID, owner)
	if err != nil {
		return nil, err
	}
	if err := w.Ready(ctx); err != nil {
		if rmErr := w.Remove(context.WithoutCancel(ctx)); rmErr != nil {
			m.log.Warn("remove failed workspace", "path", w.dir, "err", rmErr)
		}
		return nil, err
	}
	return w, nil
}

// Start does what Create does, but returns as soon as the commit is resolved and the empty
// working tree directory exists (given to owner); git fills it in the background, and Ready
// says when it is done. A container can be created on Path meanwhile, since a bind mount is
// resolved when the container starts: the clone then no longer delays the agent's start by
// its whole duration. Changes waits for the fill; Remove stops it. After a successful Start
// the caller must Remove the workspace, also when Ready fails.
func (m *Manager) Start(ctx context.Context, src Source, runID, jobID string, owner *Owner) (_ *Workspace, err error) {
	if err := checkRunID(runID); err != nil {
		return nil, err
	}
	if jobID == "" {
		return nil, errors.New("job id is empty")
	}
	if src.RepoDir == "" {
		return nil, errors.New("source repository directory is empty")
	}
	if src.SHA != "" {
		if err := checkSHA("source commit", src.SHA); err != nil {
			return nil, err
		}
	}
	name := sanitizeName(jobID)
	repoDir, err := filepath.Abs(src.RepoDir)
	if err != nil {
		return nil, fmt.Errorf("resolve source %q: %w", src.RepoDir, err)
	}
	w := &Workspace{
		m: m, runID: runID, jobID: jobID,
		dir:    filepath.Join(m.root, runID, name),
		branch: "agentrunner/" + name,
		filled: make(chan struct{}),
	}
	w.path = filepath.Join(w.dir, "repo")
	w.private = filepath.Join(w.dir, "private")
	if m.mode == ModeOverlay {
		w.path = filepath.Join(w.dir, "upper")
		w.work = filepath.Join(w.dir, "work")
	}

	si, err := m.source(ctx, repoDir)
	if err != nil {
		return nil, fmt.Errorf("create workspace for job %q: %w", jobID, err)
	}
	switch {
	case src.IncludeUncommitted:
		head, err := m.git.resolveCommit(ctx, repoDir, "HEAD")
		if err != nil {
			return nil, fmt.Errorf("create workspace for job %q: %s has no HEAD commit: %w", jobID, repoDir, err)
		}
		if src.SHA != "" && !strings.HasPrefix(head, src.SHA) {
			return nil, fmt.Errorf("create workspace for job %q: IncludeUncommitted needs the source's HEAD (%s), not %s", jobID, head, src.SHA)
		}
		if w.base, err = snapshot(ctx, m.git, repoDir, head); err != nil {
			return nil, fmt.Errorf("create workspace for job %q: %w", jobID, err)
		}
	default:
		rev := src.SHA
		if rev == "" {
			rev = "HEAD"
		}
		if w.base, err = m.resolve(ctx, si, repoDir, rev); err != nil {
			return nil, fmt.Errorf("create workspace for job %q: %w", jobID, err)
		}
	}

	if err := os.MkdirAll(filepath.Dir(w.dir), 0o700); err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	if err := os.Mkdir(w.dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("workspace for job %q of run %q already exists at %s", jobID, runID, w.dir)
		}
		return nil, fmt.Errorf("create workspace directory: %w", err)
	}
	defer func() {
		if err != nil {
			if rmErr := removeTree(w.dir); rmErr != nil {
				m.log.Warn("remove failed workspace", "path", w.dir, "err", rmErr)
			}
			removeIfEmpty(filepath.Dir(w.dir))
		}
	}()
	// The mount point exists, and is the owner's, before any container is created on it.
	if err := os.Mkdir(w.path, 0o755); err != nil {
		return nil, fmt.Errorf("create workspace directory: %w", err)
	}
	if owner != nil {
		if err := os.Lchown(w.path, owner.UID, owner.GID); err != nil {
			return nil, fmt.Errorf("create workspace for job %q: give %s to uid %d: %w", jobID, w.path, owner.UID, err)
		}
	}
	if m.mode == ModeOverlay {
		w.shared = m.sharedCheckoutOf(si.common, w.base, owner)
		if err := w.prepareUpper(owner); err != nil {
			return nil, fmt.Errorf("create workspace for job %q: %w", jobID, err)
		}
	}

	// The fill outlives Start's return but not its caller's cancellation; Remove also stops it.
	fctx, stop := context.WithCancel(ctx)
	w.stopFill = stop
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		defer close(w.filled)
		defer stop()
		fill := w.fill
		if w.shared != nil {
			fill = w.fillOverlay
		}
		if w.fillErr = fill(fctx, repoDir, si, owner); w.fillErr != nil {
			w.fillErr = fmt.Errorf("create workspace for job %q: %w", jobID, w.fillErr)
		}
	}()
	return w, nil
}

// Ready waits until the workspace is filled and returns why it could not be, if so.
func (w *Workspace) Ready(ctx context.Context) error {
	select {
	case <-w.filled:
		return w.fillErr
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// fill clones the source into the empty working tree, checks out the job's branch and makes
// the runner's private git directory.
func (w *Workspace) fill(ctx context.Context, repoDir string, si *sourceInfo, owner *Owner) error {
	if err := w.m.checkout(ctx, repoDir, si, w.path, w.branch, w.base, owner); err != nil {
		return err
	}
	if err := initPrivate(w.private, si.common, filepath.Join(w.path, ".git", "index")); err != nil {
		return err
	}
	w.m.log.Debug("workspace created", "run_id", w.runID, "job", w.jobID, "path", w.path, "base", w.base)
	return nil
}

// checkout makes the empty directory dir a complete repository cloned from the source, with
// branch checked out at base (HEAD detached at base when branch is empty), given to owner, and
// its index refreshed so that git finds the tree clean without hashing it.
func (m *Manager) checkout(ctx context.Context, repoDir string, si *sourceInfo, dir, branch, base string, owner *Owner) error {
	g := m.git
	// Objects are hard links shared with the source, so an automatic repack inside the
	// container would only duplicate them (gc.auto 0).
	settings := [][2]string{
		{"safe.directory", "*"},
		{"user.name", authorName},
		{"user.email", authorEmail},
		{"gc.auto", "0"},
	}
	err := cloneLocal(si.common, filepath.Join(dir, ".git"), clone{originURL: si.originURL, config: settings, branch: branch, base: base})
	switch {
	case err == nil:
		// HEAD is at base already: fill the index and the working tree from it.
		if _, err := g.run(ctx, dir, nil, "-c", "checkout.workers=0", "read-tree", "--reset", "-u", "HEAD"); err != nil {
			return fmt.Errorf("check out %s: %w", base, err)
		}
	case errors.Is(err, errCloneByGit):
		if err := m.cloneByGit(ctx, repoDir, si, dir, branch, base, settings); err != nil {
			return err
		}
	default:
		return fmt.Errorf("clone %s: %w", repoDir, err)
	}
	if err := prepareOwnership(dir, owner); err != nil {
		return err
	}
	// chown changed every file's ctime; refresh the index so neither the agent's first
	// `git status` nor Changes has to re-hash the whole tree.
	if _, err := g.run(ctx, dir, nil, "update-index", "-q", "--refresh"); err != nil {
		return fmt.Errorf("refresh workspace index: %w", err)
	}
	if owner != nil {
		// update-index rewrote .git/index as the runner.
		if err := os.Lchown(filepath.Join(dir, ".git", "index"), owner.UID, owner.GID); err != nil {
			return fmt.Errorf("chown workspace index: %w", err)
		}
	}
	return nil
}

// cloneByGit fills dir with git's own clone, for the sources cloneLocal refuses.
func (m *Manager) cloneByGit(ctx context.Context, repoDir string, si *sourceInfo, dir, branch, base string, settings [][2]string) error {
	g := m.git
	// The settings go in with the clone: one git process instead of one per setting.
	clone := []string{"clone", "--quiet", "--local", "--no-checkout", "--template="}
	for _, kv := range settings {
		clone = append(clone, "--config", kv[0]+"="+kv[1])
	}
	if _, err := g.run(ctx, filepath.Dir(dir), nil, append(clone, "--", repoDir, dir)...); err != nil {
		return fmt.Errorf("clone %s: %w", repoDir, err)
	}
	// clone itself writes the origin (a host path) after the --config settings: replace it.
	if !setOriginURL(filepath.Join(dir, ".git", "config"), si.originURL) {
		if _, err := g.run(ctx, dir, nil, "config", "remote.origin.url", si.originURL); err != nil {
			return fmt.Errorf("configure workspace: %w", err)
		}
	}
	co := []string{"-c", "checkout.workers=0", "checkout", "--quiet", "--no-track", "-b", branch, base}
	if branch == "" {
		co = []string{"-c", "checkout.workers=0", "checkout", "--quiet", "--detach", base}
	}
	if _, err := g.run(ctx, dir, nil, co...); err != nil {
		return fmt.Errorf("check out %s: %w", base, err)
	}
	return nil
}

// setOriginURL rewrites the url of remote "origin" in the config file clone wrote, as `git
// config remote.origin.url` would, to spare a git process on the way from an event to its
// agent. It reports false, changing nothing, when the file is not laid out as expected; the
// caller then asks git.
func setOriginURL(configPath, url string) bool {
	data, err := os.ReadFile(configPath)
	if err != nil || strings.ContainsAny(url, "\n\r") {
		return false
	}
	lines := strings.Split(string(data), "\n")
	inOrigin, set := false, false
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") {
			inOrigin = t == `[remote "origin"]`
			continue
		}
		key, _, ok := strings.Cut(t, "=")
		if inOrigin && ok && strings.TrimSpace(key) == "url" {
			if set {
				return false // several urls: leave it to git
			}
			lines[i] = "\turl = \"" + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(url) + "\""
			set = true
		}
	}
	if !set {
		return false
	}
	return os.WriteFile(configPath, []byte(strings.Join(lines, "\n")), 0o644) == nil
}

// initPrivate makes the runner's own git directory for a workspace: it borrows the source's
// objects through alternates and, when index is not empty, starts from a copy of that index
// written before any agent ran. (An overlay workspace reads the shared checkout's index.)
func initPrivate(private, srcCommon, index string) error {
	// Written directly, as `git init --bare --template=` would: a git process costs more than
	// the rest of this function, and it sits on the path from an event to the agent's start.
	for _, d := range []string{"objects/info", "objects/pack", "refs/heads", "refs/tags"} {
		if err := os.MkdirAll(filepath.Join(private, d), 0o700); err != nil {
			return fmt.Errorf("init private git dir: %w", err)
		}
	}
	for name, content := range map[string]string{
		"HEAD":                    "ref: refs/heads/main\n",
		"config":                  "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n",
		"objects/info/alternates": filepath.Join(srcCommon, "objects") + "\n",
	} {
		if err := os.WriteFile(filepath.Join(private, name), []byte(content), 0o600); err != nil {
			return fmt.Errorf("init private git dir: %w", err)
		}
	}
	if index == "" {
		return nil
	}
	return copyFile(index, filepath.Join(private, "index"), 0o600)
}

// prepareOwnership gives the tree to owner. Object files shared with the source by hard link
// stay as they are (git never writes an object file twice), unless the container user would own
// them or could not read them: those are replaced by private copies first.
func prepareOwnership(root string, owner *Owner) error {
	uid := os.Getuid()
	if owner != nil {
		uid = owner.UID
	}
	objects := filepath.Join(root, ".git", "objects") + string(filepath.Separator)
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		shared := false
		if d.Type().IsRegular() && strings.HasPrefix(p, objects) {
			info, err := d.Info()
			if err != nil {
				return err
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
				shared = int(st.Uid) != uid && info.Mode().Perm()&0o004 != 0
				if !shared {
					if err := breakLink(p, info.Mode().Perm()); err != nil {
						return err
					}
				}
			}
		}
		if owner == nil || shared {
			return nil
		}
		if err := os.Lchown(p, owner.UID, owner.GID); err != nil {
			return fmt.Errorf("give %s to uid %d: %w", p, owner.UID, err)
		}
		return nil
	})
}

// breakLink replaces the hard link p by a private copy of its content.
func breakLink(p string, perm fs.FileMode) error {
	tmp := p + ".copy"
	if err := copyFile(p, tmp, perm|0o444); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replace shared object %s: %w", p, err)
	}
	return nil
}

func copyFile(from, to string, perm fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("copy %s: %w", from, err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", to, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy to %s: %w", to, err)
	}
	// Keep the modification time: git trusts an index's stat data only for files older than
	// the index file itself ("racy git"). A copy stamped "now" would make a same-size edit made
	// in the same second as the checkout look unchanged.
	if fi, err := in.Stat(); err == nil {
		if err := os.Chtimes(to, fi.ModTime(), fi.ModTime()); err != nil {
			return fmt.Errorf("copy to %s: %w", to, err)
		}
	}
	return nil
}
