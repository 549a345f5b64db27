package workspace

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// errCloneByGit says that a source needs git's own clone: cloneLocal wrote nothing.
var errCloneByGit = errors.New("source needs git clone")

// clone is what cloneLocal writes besides the objects and refs.
type clone struct {
	originURL string
	config    [][2]string // extra settings, as `git clone --config` would add them
	branch    string      // the job's branch, checked out at base; empty: HEAD detached at base
	base      string
}

// cloneLocal makes gitDir (not yet existing) the git directory of a clone of the repository
// whose common git directory is srcGit, laid out as `git clone --local --no-checkout` lays it
// out, with HEAD already on c.branch at c.base: objects are hard links to the source's, the
// source's branches become origin's remote-tracking branches, its tags are copied, and its
// default branch gets a local branch tracking it. It writes the files directly: git's clone
// costs three processes (clone, a shell, upload-pack), which sit on the path from an event to
// its agent's start. A source this does not cover (alternates, shallow, a repository format
// with extensions such as reftable or SHA-256) is refused with errCloneByGit before anything
// is written.
func cloneLocal(srcGit, gitDir string, c clone) error {
	if err := cloneable(srcGit); err != nil {
		return err
	}
	refs, err := readRefs(srcGit)
	if err != nil {
		return fmt.Errorf("%w: %v", errCloneByGit, err)
	}
	if err := os.Mkdir(gitDir, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"refs/heads", "refs/tags", "refs/remotes/origin", "info"} {
		if err := os.MkdirAll(filepath.Join(gitDir, d), 0o755); err != nil {
			return err
		}
	}
	if err := linkObjects(filepath.Join(srcGit, "objects"), filepath.Join(gitDir, "objects")); err != nil {
		return fmt.Errorf("link objects: %w", err)
	}

	// The source's default branch, as clone finds it through the source's HEAD.
	var defaultBranch string
	if head, err := os.ReadFile(filepath.Join(srcGit, "HEAD")); err == nil {
		if target, ok := strings.CutPrefix(strings.TrimSpace(string(head)), "ref: refs/heads/"); ok {
			if _, exists := refs["refs/heads/"+target]; exists && target != c.branch {
				defaultBranch = target
			}
		}
	}
	packed := make([]string, 0, len(refs)+1)
	for name, sha := range refs {
		switch {
		case strings.HasPrefix(name, "refs/heads/"):
			packed = append(packed, sha+" refs/remotes/origin/"+strings.TrimPrefix(name, "refs/heads/"))
		case strings.HasPrefix(name, "refs/tags/"):
			packed = append(packed, sha+" "+name)
		}
	}
	if defaultBranch != "" {
		packed = append(packed, refs["refs/heads/"+defaultBranch]+" refs/heads/"+defaultBranch)
	}
	// Sorted by ref name, as the header promises; no peeled lines, so git peels tags itself.
	sort.Slice(packed, func(i, j int) bool { return packed[i][41:] < packed[j][41:] })
	var pr bytes.Buffer
	pr.WriteString("# pack-refs with: sorted \n")
	for _, l := range packed {
		pr.WriteString(l + "\n")
	}

	var cfg strings.Builder
	cfg.WriteString("[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n")
	fmt.Fprintf(&cfg, "[remote \"origin\"]\n\turl = %s\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n", configValue(c.originURL))
	if defaultBranch != "" {
		fmt.Fprintf(&cfg, "[branch %s]\n\tremote = origin\n\tmerge = %s\n", configValue(defaultBranch), configValue("refs/heads/"+defaultBranch))
	}
	for _, kv := range c.config {
		section, key, ok := strings.Cut(kv[0], ".")
		if !ok || strings.Contains(key, ".") {
			return fmt.Errorf("clone setting %q: want section.key", kv[0])
		}
		fmt.Fprintf(&cfg, "[%s]\n\t%s = %s\n", section, key, configValue(kv[1]))
	}

	files := []struct {
		name, content string
	}{
		{"config", cfg.String()},
		{"packed-refs", pr.String()},
		{"HEAD", c.base + "\n"},
	}
	if c.branch != "" {
		files[2].content = "ref: refs/heads/" + c.branch + "\n"
		files = append(files, struct{ name, content string }{"refs/heads/" + c.branch, c.base + "\n"})
	}
	if defaultBranch != "" {
		files = append(files, struct{ name, content string }{"refs/remotes/origin/HEAD", "ref: refs/remotes/origin/" + defaultBranch + "\n"})
	}
	for _, f := range files {
		p := filepath.Join(gitDir, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(f.content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// cloneable refuses, with errCloneByGit, a source cloneLocal would not copy faithfully.
func cloneable(srcGit string) error {
	for _, name := range []string{"shallow", "objects/info/alternates", "commondir", "reftable"} {
		if _, err := os.Lstat(filepath.Join(srcGit, name)); err == nil {
			return fmt.Errorf("%w: the source has %s", errCloneByGit, name)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(srcGit, "config"))
	if err != nil {
		return fmt.Errorf("%w: %v", errCloneByGit, err)
	}
	// Any extension (objectFormat, refStorage, worktreeConfig, …) changes what a copy means,
	// and an included file could hold one.
	lower := bytes.ToLower(cfg)
	if bytes.Contains(lower, []byte("[extensions")) || repoFormatV1.Match(cfg) {
		return fmt.Errorf("%w: the source's repository format has extensions", errCloneByGit)
	}
	if bytes.Contains(lower, []byte("[include")) {
		return fmt.Errorf("%w: the source's config includes other files", errCloneByGit)
	}
	return nil
}

var repoFormatV1 = regexp.MustCompile(`(?im)^\s*repositoryformatversion\s*=\s*[1-9]`)

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// readRefs returns the branches and tags of srcGit (name → commit or tag object id): its
// packed-refs overlaid by its loose refs. A symbolic ref among them is skipped, as clone
// would not copy it as a branch either.
func readRefs(srcGit string) (map[string]string, error) {
	refs := map[string]string{}
	if f, err := os.Open(filepath.Join(srcGit, "packed-refs")); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || line[0] == '#' || line[0] == '^' {
				continue
			}
			sha, name, ok := strings.Cut(line, " ")
			if !ok || !shaRE.MatchString(sha) {
				return nil, fmt.Errorf("packed-refs: unexpected line %q", line)
			}
			if !wantRef(name) {
				continue
			}
			if !validRefName(name) {
				return nil, fmt.Errorf("packed-refs: %q is not a valid ref name", name)
			}
			refs[name] = sha
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("packed-refs: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, dir := range []string{"refs/heads", "refs/tags"} {
		root := filepath.Join(srcGit, filepath.FromSlash(dir))
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && p == root {
					return nil
				}
				return err
			}
			if d.IsDir() {
				return nil
			}
			if strings.HasSuffix(p, ".lock") {
				return nil // a ref being updated right now: its old value stays
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			content := strings.TrimSpace(string(data))
			if strings.HasPrefix(content, "ref: ") {
				return nil
			}
			if !shaRE.MatchString(content) {
				return fmt.Errorf("ref %s: unexpected content %q", p, content)
			}
			rel, err := filepath.Rel(srcGit, p)
			if err != nil {
				return err
			}
			name := filepath.ToSlash(rel)
			if !validRefName(name) {
				return fmt.Errorf("%q is not a valid ref name", name)
			}
			refs[name] = content
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return refs, nil
}

// validRefName applies `git check-ref-format`'s rules to a full ref name. A name git would
// refuse (a file that is no ref, or one written by hand) is no branch to copy, and some of
// them, such as one holding a newline, would corrupt the packed-refs and config written here.
func validRefName(name string) bool {
	if name == "" || name == "@" || strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".") ||
		strings.Contains(name, "..") || strings.Contains(name, "@{") || strings.Contains(name, "//") {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return false
		}
	}
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".lock") {
			return false
		}
	}
	return true
}

func wantRef(name string) bool {
	return strings.HasPrefix(name, "refs/heads/") || strings.HasPrefix(name, "refs/tags/")
}

// linkObjects links the source's object store into dst. A git process may work on the source
// meanwhile: a lock or temporary file that vanishes is of no concern, but a pack or object
// that vanishes was repacked or pruned, so its objects may now sit in a file the walk had
// already passed; the store is then linked again from scratch.
func linkObjects(src, dst string) error {
	for attempt := 1; ; attempt++ {
		vanished, err := linkTree(src, dst)
		if err != nil || len(vanished) == 0 || attempt == 3 {
			return err
		}
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
	}
}

// linkTree recreates the directory tree src at dst with every file hard-linked (copied where
// a link is impossible: another filesystem, a file the runner may not link). Like git's
// clone, it skips hidden files, and also the other transient ones. It returns the files and
// directories that vanished while it worked.
func linkTree(src, dst string) (vanished []string, err error) {
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != src {
				vanished = append(vanished, p)
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel != "." && transient(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(target, 0o755)
		case d.Type().IsRegular():
			err := os.Link(p, target)
			if err == nil {
				return nil
			}
			if errors.Is(err, fs.ErrNotExist) {
				if _, statErr := os.Lstat(p); errors.Is(statErr, fs.ErrNotExist) {
					vanished = append(vanished, p)
					return nil
				}
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			return copyFile(p, target, info.Mode().Perm())
		}
		return nil // sockets, symlinks: nothing git stores as objects
	})
	return vanished, err
}

// transient reports whether a name in an object store is a git process's work in progress,
// never an object a reader needs: hidden files (skipped by git's clone too), lock files, the
// temporary packs and objects of a fetch, and a push's quarantine directories.
func transient(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".lock") ||
		strings.HasPrefix(name, "tmp_") || strings.HasPrefix(name, "incoming-")
}

// configValue quotes v for a git config file.
func configValue(v string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`).Replace(v) + `"`
}
