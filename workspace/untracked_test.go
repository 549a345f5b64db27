package workspace

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/internal/gittest"
)

func TestGitVarintRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 16383, 16384, 16511, 1 << 20, 1<<32 + 5} {
		enc := encodeGitVarint(v)
		got, n := decodeGitVarint(enc)
		if got != v || n != len(enc) {
			t.Errorf("%d: encoded %x, decoded %d in %d bytes", v, enc, got, n)
		}
	}
	// git's own encoding of 128 is 0x80 0x00 (varint.c), not LEB128's 0x80 0x01.
	if enc := encodeGitVarint(128); string(enc) != "\x80\x00" {
		t.Errorf("128 encoded as %x, want 8000", enc)
	}
}

var opendirCount = regexp.MustCompile(`opendir:(\d+)`)

// TestUntrackedIdentFollowsTheTree builds an index with an untracked cache in one directory,
// moves the tree (inodes kept, as the overlay's lower layer keeps them), and checks that git at
// the new place uses the cache only once its identity names the new place — for each index
// version git writes.
func TestUntrackedIdentFollowsTheTree(t *testing.T) {
	for _, version := range []string{"2", "3", "4"} {
		t.Run("v"+version, func(t *testing.T) {
			files := map[string]string{"a.txt": "a\n"}
			for _, d := range []string{"one", "two", "three/deep"} {
				files[d+"/f.txt"] = d + "\n"
			}
			src, _ := gittest.Repo(t, files)
			hook := filepath.Join(t.TempDir(), "hook")
			if err := os.WriteFile(hook, []byte("#!/bin/sh\nprintf 'tok\\000'\n"), 0o700); err != nil {
				t.Fatal(err)
			}
			cfg := []string{"-c", "core.fsmonitor=" + hook, "-c", "core.fsmonitorHookVersion=2", "-c", "core.untrackedCache=true"}
			if version == "3" {
				// An intent-to-add entry has the extended flags that make a version 3 index.
				gittest.WriteFiles(t, src, map[string]string{"later.txt": "x\n"})
				gittest.Git(t, src, "add", "-N", "later.txt")
			}
			gittest.Git(t, src, "update-index", "--index-version", version)
			gittest.Git(t, src, append(cfg, "update-index", "--fsmonitor", "--untracked-cache")...)
			gittest.Git(t, src, append(cfg, "status", "--porcelain")...)
			gittest.Git(t, src, append(cfg, "status", "--porcelain")...)

			opendirs := func(dir string) string {
				cmd := exec.Command("git", append(cfg, "status", "--porcelain")...)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "GIT_TRACE2_PERF=1", "GIT_OPTIONAL_LOCKS=0")
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("git status in %s: %v\n%s", dir, err, out)
				}
				m := opendirCount.FindStringSubmatch(string(out))
				if m == nil {
					t.Fatalf("no opendir count in git's trace:\n%s", out)
				}
				if strings.Contains(string(out), "warning") {
					t.Errorf("git warns:\n%s", out)
				}
				return m[1]
			}
			if n := opendirs(src); n != "0" {
				t.Fatalf("at the place it was built, git opened %s directories; want 0", n)
			}
			moved := filepath.Join(t.TempDir(), "moved")
			if err := os.Rename(src, moved); err != nil {
				t.Fatal(err)
			}
			index := filepath.Join(moved, ".git", "index")
			if n := opendirs(moved); n == "0" {
				t.Fatal("moved: git used a cache whose identity names another place; the test proves nothing")
			}
			if err := setUntrackedIdent(index, moved); err != nil {
				t.Fatal(err)
			}
			if n := opendirs(moved); n != "0" {
				t.Errorf("moved, identity set: git opened %s directories; want 0", n)
			}
			if out := gittest.Git(t, moved, "ls-files"); !strings.Contains(out, "three/deep/f.txt") {
				t.Errorf("git reads the rewritten index wrong: %q", out)
			}
			before, _ := os.ReadFile(index)
			if err := setUntrackedIdent(index, moved); err != nil {
				t.Fatal(err)
			}
			if after, _ := os.ReadFile(index); string(after) != string(before) {
				t.Error("setting the same identity twice changed the index")
			}
		})
	}
}

func TestUntrackedIdentRefusesOtherIndexes(t *testing.T) {
	src, _ := gittest.Repo(t, map[string]string{"a": "a\n"})
	index := filepath.Join(src, ".git", "index")
	before, _ := os.ReadFile(index)
	if err := setUntrackedIdent(index, "/workspace"); err == nil || !strings.Contains(err.Error(), "no untracked cache") {
		t.Errorf("index without an untracked cache: %v", err)
	}
	if after, _ := os.ReadFile(index); string(after) != string(before) {
		t.Error("a refused index was changed")
	}
	damaged := append([]byte(nil), before...)
	damaged[20] ^= 1
	if _, err := withUntrackedIdent(damaged, "x\x00"); err == nil {
		t.Error("damaged index accepted")
	}
	for i := 0; i < len(before)-20; i += 7 {
		_, _ = withUntrackedIdent(before[:i], "x\x00") // truncated: an error, never a panic
	}
}
