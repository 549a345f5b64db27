package event

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// FromLocalRepo builds the event `runner exec` runs against, from the git repository at dir
// (any directory inside it), with the real git binary. kind is push (the default when empty),
// pull_request (a synthetic opened pull request from the current branch into the default
// branch), schedule or dispatch.
//
// The owner and name come from the `origin` remote when there is one, else the owner is
// "local" and the name the repository's directory name. The default branch is origin/HEAD,
// else main or master, whichever exists. ChangedFiles are HEAD's changes against the merge
// base with the default branch; a push on the default branch itself compares with HEAD's
// parent. A detached HEAD has no branch.
func FromLocalRepo(ctx context.Context, dir, kind string) (*Event, error) {
	if kind == "" {
		kind = KindPush
	}
	switch kind {
	case KindPush, KindPullRequest, KindSchedule, KindDispatch:
	default:
		return nil, fmt.Errorf("local event kind %q: want push, pull_request, schedule or dispatch", kind)
	}
	g := gitRunner{dir: dir}
	top, err := g.out(ctx, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, fmt.Errorf("read git repository at %s: %w", dir, err)
	}
	g.dir = top
	sha, err := g.out(ctx, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
	if err != nil {
		return nil, fmt.Errorf("read HEAD of %s: the repository has no commit yet: %w", top, err)
	}
	branch, _ := g.out(ctx, "symbolic-ref", "--quiet", "--short", "HEAD") // fails when detached
	repo := Repo{Owner: "local", Name: filepath.Base(top)}
	if u, err := g.out(ctx, "config", "--get", "remote.origin.url"); err == nil && u != "" {
		repo.CloneURL = u
		if owner, name, ok := ownerName(u); ok {
			repo.Owner, repo.Name = owner, name
		}
	}
	defRef := g.defaultBranch(ctx, branch)
	repo.DefaultBranch = strings.TrimPrefix(strings.TrimPrefix(defRef, "refs/remotes/origin/"), "refs/heads/")

	var base string
	switch {
	case kind == KindPush && branch != "" && branch == repo.DefaultBranch:
		base, _ = g.out(ctx, "rev-parse", "--verify", "--quiet", "HEAD^1^{commit}")
	case defRef != "":
		base, _ = g.out(ctx, "merge-base", defRef, "HEAD")
	}
	files, err := g.changedFiles(ctx, base)
	if err != nil {
		return nil, err
	}
	user, _ := g.out(ctx, "config", "--get", "user.name")
	if user == "" {
		user = "local"
	}

	var ev *Event
	switch kind {
	case KindSchedule:
		ev = Scheduled(repo, sha, branch, "", time.Now())
	case KindDispatch:
		ev = Dispatched(repo, sha, branch, "", nil)
	case KindPush:
		ev = &Event{Kind: KindPush, Repo: repo, SHA: sha, Before: base}
		setBranch(ev, branch)
		ev.Payload = map[string]any{
			"ref":        ev.Ref,
			"before":     base,
			"after":      sha,
			"created":    false,
			"deleted":    false,
			"repository": repoPayload(repo),
			"sender":     map[string]any{"login": user},
		}
	case KindPullRequest:
		if branch == "" {
			return nil, fmt.Errorf("build a pull_request event in %s: HEAD is detached; check out the branch the pull request would come from", top)
		}
		baseSHA, _ := g.out(ctx, "rev-parse", "--verify", "--quiet", defRef+"^{commit}")
		title, _ := g.out(ctx, "log", "-1", "--format=%s", "HEAD")
		ev = localPullRequest(repo, branch, sha, baseSHA, title, user)
	}
	ev.ChangedFiles = files
	ev.Sender = user
	return ev, nil
}

func localPullRequest(repo Repo, head, headSHA, baseSHA, title, user string) *Event {
	pr := &PullRequest{
		Title: title, Author: user,
		HeadRef: head, HeadSHA: headSHA, HeadRepo: repo.FullName(),
		BaseRef: repo.DefaultBranch, BaseSHA: baseSHA,
	}
	ev := &Event{Kind: KindPullRequest, Action: "opened", Repo: repo, SHA: headSHA, PullRequest: pr,
		Branch: pr.BaseRef, Ref: "refs/heads/" + head}
	side := func(ref, sha string) map[string]any {
		return map[string]any{"ref": ref, "sha": sha, "repo": repoPayload(repo)}
	}
	ev.Payload = map[string]any{
		"action": "opened",
		"number": 0,
		"pull_request": map[string]any{
			"number": 0,
			"title":  title,
			"body":   "",
			"user":   map[string]any{"login": user},
			"draft":  false,
			"merged": false,
			"labels": []any{},
			"head":   side(head, headSHA),
			"base":   side(pr.BaseRef, baseSHA),
		},
		"repository": repoPayload(repo),
		"sender":     map[string]any{"login": user},
	}
	return ev
}

type gitRunner struct{ dir string }

// out runs git and returns its trimmed standard output; the error carries git's stderr.
func (g gitRunner) out(ctx context.Context, args ...string) (string, error) {
	b, err := g.raw(ctx, args...)
	return strings.TrimSpace(string(b)), err
}

func (g gitRunner) raw(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", g.dir}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return nil, fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
		}
		return nil, fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// defaultBranch returns the full ref of the default branch: origin/HEAD's target, else
// main or master (local, then origin's), else the current branch, else "".
func (g gitRunner) defaultBranch(ctx context.Context, current string) string {
	if ref, err := g.out(ctx, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"); err == nil && ref != "" {
		return ref
	}
	for _, ref := range []string{"refs/heads/main", "refs/heads/master", "refs/remotes/origin/main", "refs/remotes/origin/master"} {
		if _, err := g.out(ctx, "rev-parse", "--verify", "--quiet", ref+"^{commit}"); err == nil {
			return ref
		}
	}
	if current != "" {
		return "refs/heads/" + current
	}
	return ""
}

// changedFiles lists the files that differ between base and HEAD. With no base (a root
// commit pushed, or no shared history) it lists HEAD's own changes when HEAD is a root
// commit, and nil (unknown) otherwise.
func (g gitRunner) changedFiles(ctx context.Context, base string) ([]string, error) {
	var b []byte
	var err error
	if base == "" {
		if _, perr := g.out(ctx, "rev-parse", "--verify", "--quiet", "HEAD^1"); perr == nil {
			return nil, nil
		}
		b, err = g.raw(ctx, "diff-tree", "--root", "--no-commit-id", "--name-only", "-r", "-z", "HEAD")
	} else {
		b, err = g.raw(ctx, "diff", "--no-renames", "--name-only", "-z", base, "HEAD")
	}
	if err != nil {
		return nil, fmt.Errorf("list changed files: %w", err)
	}
	files := []string{}
	for f := range bytes.SplitSeq(b, []byte{0}) {
		if len(f) > 0 {
			files = append(files, string(f))
		}
	}
	sort.Strings(files)
	return files, nil
}

// ownerName reads owner and name from a remote URL: https://host/owner/name(.git),
// git@host:owner/name.git, ssh://git@host/owner/name, or a local path ending in owner/name.
func ownerName(remote string) (owner, name string, ok bool) {
	p := remote
	if u, err := url.Parse(remote); err == nil && u.Scheme != "" && u.Host != "" {
		p = u.Path
	} else if i := strings.Index(remote, ":"); i > 0 && !strings.Contains(remote[:i], "/") && len(remote[:i]) > 1 {
		p = remote[i+1:] // scp-like: git@github.com:owner/name.git (a 1-letter prefix is a Windows drive)
	}
	p = strings.TrimSuffix(strings.TrimRight(filepath.ToSlash(p), "/"), ".git")
	name = path.Base(p)
	owner = path.Base(path.Dir(p))
	if name == "" || name == "." || name == "/" || owner == "" || owner == "." || owner == "/" {
		return "", "", false
	}
	return owner, name, true
}
