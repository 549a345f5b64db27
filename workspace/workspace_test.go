package workspace

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var baseFiles = map[string]string{
	"README.md":      "hello\n",
	"src/main.go":    "package main\n\nfunc main() {}\n",
	"src/util.go":    "package main\n\n// util does things.\nfunc util() int {\n\treturn 1\n}\n\n// more text so renames are detected\n// line\n// line\n",
	"docs/guide.txt": "guide\n",
	"logo.bin":       binaryContent,
	".gitignore":     "*.log\n",
}

// agentUser is the uid tests act as inside a workspace: another user when the test runs as root.
func agentUser() (*Owner, *syscall.Credential) {
	if os.Getuid() != 0 {
		return nil, nil
	}
	return &Owner{UID: 12345, GID: 12345}, &syscall.Credential{Uid: 12345, Gid: 12345}
}

// openPath makes the directories above the workspace traversable for the agent uid, as the bind
// mount does for a container.
func openPath(t *testing.T, w *Workspace) {
	t.Helper()
	for p := filepath.Dir(w.path); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
}

func TestChanges(t *testing.T) {
	t.Parallel()
	owner, cred := agentUser()
	agentGit := func(t *testing.T, dir string, args ...string) {
		t.Helper()
		if _, err := testGitAs(dir, cred, []string{"GIT_AUTHOR_NAME=Agent", "GIT_AUTHOR_EMAIL=agent@example.com"}, args...); err != nil {
			t.Fatalf("git %v as agent: %v", args, err)
		}
	}
	write := func(t *testing.T, dir, name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		want   []FileChange
	}{
		{"nothing changed gives an empty patch", func(t *testing.T, dir string) {}, nil},
		{"a text edit is a modification", func(t *testing.T, dir string) {
			write(t, dir, "README.md", "hello world\n")
		}, []FileChange{{Path: "README.md", Status: Modified}}},
		{"a new untracked file is an addition", func(t *testing.T, dir string) {
			write(t, dir, "new/dir/file.txt", "new\n")
		}, []FileChange{{Path: "new/dir/file.txt", Status: Added}}},
		{"a removed file is a deletion", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "docs/guide.txt"))
		}, []FileChange{{Path: "docs/guide.txt", Status: Deleted}}},
		{"a new binary file is a binary addition", func(t *testing.T, dir string) {
			write(t, dir, "img/pic.png", "\x89PNG\x00\x00"+binaryContent)
		}, []FileChange{{Path: "img/pic.png", Status: Added, Binary: true}}},
		{"an edited binary file is a binary modification", func(t *testing.T, dir string) {
			write(t, dir, "logo.bin", binaryContent+"\x00more")
		}, []FileChange{{Path: "logo.bin", Status: Modified, Binary: true}}},
		{"a moved file is a rename", func(t *testing.T, dir string) {
			if err := os.Rename(filepath.Join(dir, "src/util.go"), filepath.Join(dir, "src/helpers.go")); err != nil {
				t.Fatal(err)
			}
		}, []FileChange{{Path: "src/helpers.go", OldPath: "src/util.go", Status: Renamed}}},
		{"ignored files are not changes", func(t *testing.T, dir string) {
			write(t, dir, "build.log", "noise\n")
		}, nil},
		{"commits the agent made count, plus what it left uncommitted", func(t *testing.T, dir string) {
			write(t, dir, "src/main.go", "package main\n\nfunc main() { println(1) }\n")
			write(t, dir, "added.txt", "x\n")
			agentGit(t, dir, "add", "-A")
			agentGit(t, dir, "commit", "-q", "-m", "agent work")
			write(t, dir, "README.md", "after commit\n")
			agentGit(t, dir, "rm", "-q", "docs/guide.txt")
			agentGit(t, dir, "commit", "-q", "-m", "second")
		}, []FileChange{
			{Path: "README.md", Status: Modified},
			{Path: "added.txt", Status: Added},
			{Path: "docs/guide.txt", Status: Deleted},
			{Path: "src/main.go", Status: Modified},
		}},
		{"staged but uncommitted edits count", func(t *testing.T, dir string) {
			write(t, dir, "src/main.go", "package main\n")
			agentGit(t, dir, "add", "src/main.go")
		}, []FileChange{{Path: "src/main.go", Status: Modified}}},
		{"a hostile .git/config in the workspace runs nothing on the host", func(t *testing.T, dir string) {
			marker := filepath.Join(t.TempDir(), "pwned")
			agentGit(t, dir, "config", "core.fsmonitor", "touch "+marker+" #")
			agentGit(t, dir, "config", "filter.x.clean", "touch "+marker)
			write(t, dir, ".gitattributes", "* filter=x\n")
			t.Cleanup(func() {
				if _, err := os.Stat(marker); err == nil {
					t.Errorf("a command from the workspace's .git/config ran on the host")
				}
			})
		}, []FileChange{{Path: ".gitattributes", Status: Added}}},
	}
	src, head := newRepo(t, baseFiles)
	m := newManager(t)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := m.Create(t.Context(), Source{RepoDir: src, SHA: head}, "run1", "job "+tc.name, owner)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Remove(t.Context()) })
			if w.BaseSHA() != head {
				t.Fatalf("BaseSHA = %s, want %s", w.BaseSHA(), head)
			}
			openPath(t, w)
			tc.change(t, w.Path())
			c, err := w.Changes(t.Context(), ChangesOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c.Files); diff != "" {
				t.Errorf("case %d files (-want +got):\n%s", i, diff)
			}
			if (len(tc.want) == 0) != c.Empty() {
				t.Errorf("Empty() = %v with files %v", c.Empty(), c.Files)
			}
			// The patch applied onto the base gives exactly the workspace's files.
			got := readTree(t, applyPatch(t, src, head, patchOf(t, c)))
			want := readTree(t, w.Path())
			delete(want, "build.log") // ignored, not a change
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("base + patch differs from the workspace (-workspace +applied):\n%s", diff)
			}
		})
	}
}

func TestCreateMakesAWorkingRepository(t *testing.T) {
	t.Parallel()
	owner, cred := agentUser()
	src, head := newRepo(t, baseFiles)
	testGit(t, src, "branch", "feature")
	m := newManager(t)
	w, err := m.Create(t.Context(), Source{RepoDir: src, SHA: head[:12]}, "run-a", "audit[api]", owner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Remove(t.Context()) })
	openPath(t, w)

	if want := filepath.Join(m.Root(), "run-a"); filepath.Dir(filepath.Dir(w.Path())) != want {
		t.Errorf("workspace %s is not below %s", w.Path(), want)
	}
	if strings.ContainsAny(filepath.Base(filepath.Dir(w.Path())), "[]") {
		t.Errorf("job directory %s is not sanitized", w.Path())
	}
	// .git is a directory, not a file pointing at a host path.
	if fi, err := os.Stat(filepath.Join(w.Path(), ".git")); err != nil || !fi.IsDir() {
		t.Fatalf(".git is not a directory: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(w.Path(), ".git", "objects", "info", "alternates")); err == nil {
		t.Errorf("workspace depends on alternates %q the container cannot see", b)
	}
	for _, args := range [][]string{
		{"status", "--porcelain"},
		{"rev-parse", "HEAD"},
		{"rev-parse", "--abbrev-ref", "HEAD"},
		{"log", "--oneline", "origin/feature"},
		{"fsck", "--no-dangling"},
	} {
		out, err := testGitAs(w.Path(), cred, nil, args...)
		if err != nil {
			t.Fatalf("git %v inside the workspace: %v", args, err)
		}
		switch args[0] + args[len(args)-1] {
		case "status--porcelain":
			if out != "" {
				t.Errorf("fresh workspace is dirty: %q", out)
			}
		case "rev-parseHEAD":
			if args[1] == "HEAD" && out != head {
				t.Errorf("HEAD = %s, want %s", out, head)
			}
			if args[1] == "--abbrev-ref" && out != w.Branch() {
				t.Errorf("branch = %s, want %s", out, w.Branch())
			}
		}
	}
	if owner != nil {
		// The agent can create files everywhere, including new objects.
		if _, err := testGitAs(w.Path(), cred, nil, "commit", "-q", "--allow-empty", "-m", "as agent"); err != nil {
			t.Fatalf("agent cannot commit: %v", err)
		}
		// Objects stay shared with the source (hard links) and the agent cannot rewrite them.
		shared := 0
		filepath.WalkDir(filepath.Join(w.Path(), ".git", "objects"), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				fi, _ := d.Info()
				st := fi.Sys().(*syscall.Stat_t)
				if st.Nlink > 1 {
					shared++
					if int(st.Uid) == owner.UID {
						t.Errorf("shared object %s belongs to the agent", p)
					}
				}
			}
			return nil
		})
		if shared == 0 {
			t.Errorf("no object file is shared with the source by hard link")
		}
	}
}

func TestCreateRejectsBadInput(t *testing.T) {
	t.Parallel()
	src, head := newRepo(t, baseFiles)
	m := newManager(t)
	tests := []struct {
		name, runID, jobID string
		src                Source
		wantErr            string
	}{
		{"a run id with a slash", "a/b", "j", Source{RepoDir: src}, "run id"},
		{"a run id that is reserved", "mirrors", "j", Source{RepoDir: src}, "run id"},
		{"an empty job id", "r", "", Source{RepoDir: src}, "job id is empty"},
		{"a sha that is an option", "r", "j", Source{RepoDir: src, SHA: "--output=x"}, "not a hex commit id"},
		{"an unknown commit", "r", "j", Source{RepoDir: src, SHA: "deadbeef"}, "not found"},
		{"a directory that is no repository", "r", "j", Source{RepoDir: t.TempDir()}, "not a git repository"},
		{"uncommitted state of another commit", "r", "j", Source{RepoDir: src, SHA: "abcdef12", IncludeUncommitted: true}, "needs the source's HEAD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Create(t.Context(), tc.src, tc.runID, tc.jobID, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
	// Nothing is left behind by failed creations.
	if _, err := os.Stat(filepath.Join(m.Root(), "r")); err == nil {
		t.Errorf("a failed Create left %s", filepath.Join(m.Root(), "r"))
	}
	w, err := m.Create(t.Context(), Source{RepoDir: src, SHA: head}, "r", "j", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Remove(t.Context())
	if _, err := m.Create(t.Context(), Source{RepoDir: src, SHA: head}, "r", "j", nil); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second Create of the same job: err = %v, want already exists", err)
	}
}

// The origin written without git reads back through git exactly, whatever the URL holds.
func TestSetOriginURLReadsBackThroughGit(t *testing.T) {
	for _, url := range []string{
		"https://github.com/acme/app.git",
		`https://example.com/a#b;c "quoted" back\slash`,
	} {
		dir := t.TempDir()
		testGit(t, dir, "init", "-q")
		testGit(t, dir, "remote", "add", "origin", "/some/host/path")
		if !setOriginURL(filepath.Join(dir, ".git", "config"), url) {
			t.Fatalf("setOriginURL refused a config git wrote")
		}
		if got := testGit(t, dir, "config", "--get", "remote.origin.url"); got != url {
			t.Errorf("origin = %q, want %q", got, url)
		}
	}
	if setOriginURL(filepath.Join(t.TempDir(), "missing"), "x") {
		t.Error("setOriginURL reported success on a missing file")
	}
}
