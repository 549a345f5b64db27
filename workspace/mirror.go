package workspace

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing/fstest"
	"time"
)

// mirrorRefspecs are what a mirror keeps: branches, tags, and pull request heads where the
// remote has them (GitHub does), so a job can check out a fork's commit.
var mirrorRefspecs = []string{
	"+refs/heads/*:refs/heads/*",
	"+refs/tags/*:refs/tags/*",
	"+refs/pull/*/head:refs/pull/*/head",
}

// mirrorName maps a clone URL to a directory name that is readable and unique.
func mirrorName(cloneURL string) string {
	s := cloneURL
	if _, rest, ok := strings.Cut(s, "://"); ok {
		s = rest
	}
	s = strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git")
	clean := strings.Trim(unsafeNameRE.ReplaceAllString(s, "_"), "._")
	if len(clean) > 80 {
		clean = clean[len(clean)-80:]
	}
	sum := sha256.Sum256([]byte(cloneURL))
	return clean + "-" + hex.EncodeToString(sum[:4]) + ".git"
}

// Mirror returns a bare mirror of cloneURL under <root>/mirrors, fetched now: created on first
// use, updated (with pruning) on later calls. Fetches of the same mirror are serialised with a
// file lock, so several goroutines or processes sharing the root are safe; Create from the
// mirror while no fetch runs. auth.Token is sent as an HTTP Authorization header scoped to the
// URL's origin, through the environment: it never appears in argv, in the mirror's config, or in
// an error. A cloneURL carrying credentials is refused.
func (m *Manager) Mirror(ctx context.Context, cloneURL string, auth Auth) (repoDir string, err error) {
	if err := checkRemoteURL(cloneURL); err != nil {
		return "", fmt.Errorf("mirror: %w", err)
	}
	mirrors := filepath.Join(m.root, mirrorsDir)
	if err := os.MkdirAll(mirrors, 0o700); err != nil {
		return "", fmt.Errorf("mirror %s: %w", cloneURL, err)
	}
	name := mirrorName(cloneURL)
	dir := filepath.Join(mirrors, name)
	unlock, err := lockFile(ctx, filepath.Join(mirrors, name+".lock"))
	if err != nil {
		return "", fmt.Errorf("mirror %s: %w", cloneURL, err)
	}
	defer unlock()

	g := m.git.withAuth(cloneURL, auth)
	log := m.log.With("mirror", cloneURL)
	start := time.Now()
	if _, err := os.Stat(dir); err == nil {
		if _, err := g.run(ctx, dir, nil, "fetch", "--quiet", "--prune", "origin"); err != nil {
			return "", fmt.Errorf("update mirror of %s: %w", cloneURL, err)
		}
		log.Debug("mirror updated", "took", time.Since(start))
		return dir, nil
	}
	// First use: build it aside and move it in place only when the fetch succeeded.
	tmpName := randomName("mirror")
	tmp := filepath.Join(m.root, tmpDir, tmpName)
	m.mu.Lock()
	m.pending[tmpName] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.pending, tmpName)
		m.mu.Unlock()
		if err != nil {
			_ = removeTree(tmp)
		}
	}()
	if _, err := g.run(ctx, m.root, nil, "init", "--quiet", "--bare", "--template=", tmp); err != nil {
		return "", fmt.Errorf("create mirror of %s: %w", cloneURL, err)
	}
	cfg := [][2]string{
		{"remote.origin.url", cloneURL},
		// A detached gc could delete pack files while Create hard-links them.
		{"gc.autoDetach", "false"},
	}
	for _, kv := range cfg {
		if _, err := g.run(ctx, tmp, nil, "config", kv[0], kv[1]); err != nil {
			return "", fmt.Errorf("create mirror of %s: %w", cloneURL, err)
		}
	}
	for _, rs := range mirrorRefspecs {
		if _, err := g.run(ctx, tmp, nil, "config", "--add", "remote.origin.fetch", rs); err != nil {
			return "", fmt.Errorf("create mirror of %s: %w", cloneURL, err)
		}
	}
	if _, err := g.run(ctx, tmp, nil, "fetch", "--quiet", "origin"); err != nil {
		return "", fmt.Errorf("create mirror of %s: %w", cloneURL, err)
	}
	// The remote's default branch becomes HEAD, so Create without a SHA starts there.
	if out, err := g.out(ctx, tmp, "ls-remote", "--symref", "origin", "HEAD"); err == nil {
		if ref, ok := strings.CutPrefix(out, "ref: "); ok {
			ref, _, _ = strings.Cut(ref, "\t")
			_, _ = g.run(ctx, tmp, nil, "symbolic-ref", "HEAD", ref)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("create mirror of %s: %w", cloneURL, err)
	}
	log.Info("mirror created", "path", dir, "took", time.Since(start))
	return dir, nil
}

// lockFile takes an exclusive flock on p, waiting until it is free or ctx ends. The holder may
// delete p before unlocking (a shared checkout's lock goes with it): a waiter that then gets
// the lock of the deleted file notices and locks the file now at p instead.
func lockFile(ctx context.Context, p string) (unlock func(), err error) {
	for {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open lock %s: %w", p, err)
		}
		for {
			err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if err == nil {
				break
			}
			if !errors.Is(err, syscall.EWOULDBLOCK) {
				f.Close()
				return nil, fmt.Errorf("lock %s: %w", p, err)
			}
			select {
			case <-ctx.Done():
				f.Close()
				return nil, fmt.Errorf("wait for lock %s: %w", p, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
		held, herr := f.Stat()
		now, nerr := os.Stat(p)
		if herr == nil && nerr == nil && os.SameFile(held, now) {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		f.Close() // deleted (or replaced) by the previous holder: lock the current file
	}
}

// Limits of ReadDir: configuration files are small, and a hostile repository must not make the
// daemon read gigabytes.
const (
	maxReadDirFile  = 1 << 20
	maxReadDirTotal = 16 << 20
)

// ReadDir returns the regular files below dir (e.g. ".agents") at commit sha of the repository
// at repoDir, without a checkout. Paths in the returned FS are relative to the repository root
// (".agents/x.yaml"), so error messages name them as users know them;
// fs.Sub gives a view of dir alone. A missing dir gives an FS without it. Symbolic links and
// submodules are left out; a file over 1 MiB, or over 16 MiB in total, is an error.
func ReadDir(ctx context.Context, repoDir, sha, dir string) (fs.FS, error) {
	if err := checkSHA("commit", sha); err != nil {
		return nil, err
	}
	clean := path.Clean(strings.TrimPrefix(filepath.ToSlash(dir), "./"))
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, fmt.Errorf("read %q at %s: directory must be relative to the repository root", dir, sha)
	}
	g, done, err := tempGitRunner()
	if err != nil {
		return nil, err
	}
	defer done()
	commit, err := g.resolveCommit(ctx, repoDir, sha)
	if err != nil {
		return nil, err
	}
	args := []string{"ls-tree", "-r", "-z", "-l", "--full-tree", commit}
	if clean != "." {
		args = append(args, "--", clean)
	}
	list, err := g.run(ctx, repoDir, nil, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s at %s: %w", clean, sha, err)
	}
	type entry struct{ mode, oid, path string }
	var entries []entry
	var batch bytes.Buffer
	total := 0
	for _, rec := range bytes.Split(list, []byte{0}) {
		meta, p, ok := strings.Cut(string(rec), "\t")
		if !ok {
			continue
		}
		f := strings.Fields(meta) // mode type oid size
		if len(f) != 4 || f[1] != "blob" || (f[0] != "100644" && f[0] != "100755") {
			continue
		}
		size, err := strconv.Atoi(f[3])
		if err != nil {
			return nil, fmt.Errorf("list %s at %s: unexpected ls-tree line %q", clean, sha, meta)
		}
		if size > maxReadDirFile {
			return nil, fmt.Errorf("%s at %s is %d bytes; configuration files are limited to %d", p, sha, size, maxReadDirFile)
		}
		if total += size; total > maxReadDirTotal {
			return nil, fmt.Errorf("%s at %s holds more than %d bytes", clean, sha, maxReadDirTotal)
		}
		entries = append(entries, entry{f[0], f[2], p})
		batch.WriteString(f[2] + "\n")
	}
	fsys := fstest.MapFS{}
	if len(entries) == 0 {
		return fsys, nil
	}
	out, err := g.run(ctx, repoDir, batch.Bytes(), "cat-file", "--batch")
	if err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", clean, sha, err)
	}
	r := bufio.NewReader(bytes.NewReader(out))
	for _, e := range entries {
		header, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("read %s at %s: truncated cat-file output", e.path, sha)
		}
		f := strings.Fields(header)
		if len(f) != 3 {
			return nil, fmt.Errorf("read %s at %s: unexpected cat-file header %q", e.path, sha, header)
		}
		size, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, fmt.Errorf("read %s at %s: unexpected cat-file header %q", e.path, sha, header)
		}
		data := make([]byte, size+1)
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, fmt.Errorf("read %s at %s: %w", e.path, sha, err)
		}
		mode := fs.FileMode(0o644)
		if e.mode == "100755" {
			mode = 0o755
		}
		fsys[e.path] = &fstest.MapFile{Data: data[:size], Mode: mode}
	}
	return fsys, nil
}

// tempGitRunner returns a git runner whose HOME is a fresh empty directory, for the functions
// that work without a Manager.
func tempGitRunner() (gitRunner, func(), error) {
	// The pid in the name lets sweepTempHomes tell a crashed process's leftovers from live ones.
	home, err := os.MkdirTemp("", fmt.Sprintf("%s%d-*", tempHomePrefix, os.Getpid()))
	if err != nil {
		return gitRunner{}, nil, fmt.Errorf("create git home: %w", err)
	}
	return newGitRunner(home), func() { os.RemoveAll(home) }, nil
}

const tempHomePrefix = "agentrunner-git-home-"

// sweepTempHomes removes the temporary git homes of processes that are gone (a runner killed
// while it merged, pushed or read config), so a crash leaves nothing behind for long.
func sweepTempHomes() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempHomePrefix+"*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), tempHomePrefix)
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
}
