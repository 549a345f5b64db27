package carry

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

var testLimits = Limits{Bytes: 1 << 20, Entries: 1000}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// The trees arrive as they were: files with their executable bit, directories, empty ones
// too, symbolic links as links (even one pointing out of the tree: it is recreated, never
// followed); a FIFO does not travel, and reading it does not block.
func TestTreesTravelAsTheyWere(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	write(t, filepath.Join(src, "main.go"), "package main\n", 0o644)
	write(t, filepath.Join(src, "bin/run.sh"), "#!/bin/sh\n", 0o755)
	write(t, filepath.Join(src, ".git/HEAD"), "ref: refs/heads/main\n", 0o644)
	write(t, filepath.Join(out, "report.md"), "# done\n", 0o644)
	if err := os.Mkdir(filepath.Join(src, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "host")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteTrees(&buf, map[string]string{"workspace": src, "out": out}, testLimits); err != nil {
		t.Fatal(err)
	}
	ws, o := t.TempDir(), t.TempDir()
	if err := ReadTrees(&buf, map[string]string{"workspace": ws, "out": o}, testLimits); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"main.go": "package main\n", "bin/run.sh": "#!/bin/sh\n", ".git/HEAD": "ref: refs/heads/main\n"} {
		if got, err := os.ReadFile(filepath.Join(ws, path)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(ws, "bin/run.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("bin/run.sh lost its executable bit: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(ws, "empty")); err != nil || !fi.IsDir() {
		t.Errorf("the empty directory did not travel: %v", err)
	}
	if target, err := os.Readlink(filepath.Join(ws, "host")); err != nil || target != "/etc/passwd" {
		t.Errorf("host link = %q, %v; want the link itself", target, err)
	}
	if _, err := os.Lstat(filepath.Join(ws, "fifo")); !os.IsNotExist(err) {
		t.Errorf("the FIFO travelled: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(o, "report.md")); string(got) != "# done\n" {
		t.Errorf("out/report.md = %q", got)
	}
}

type entry struct {
	typ        byte
	name, link string
	body       string
}

func archive(t *testing.T, entries ...entry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		size := int64(len(e.body))
		if e.typ != tar.TypeReg {
			size = 0
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Size: size, Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// What a prompt-injected agent could send back is refused, and nothing lands outside the
// trees: paths that climb out, absolute paths, a tree that is not one of ours, writes through
// a link it planted, hard links and devices, too much data, too many files.
func TestHostileArchivesAreRefused(t *testing.T) {
	outside := t.TempDir()
	for _, tc := range []struct {
		name    string
		entries []entry
		lim     Limits
		want    string
	}{
		{"dot-dot", []entry{{typ: tar.TypeReg, name: "workspace/../../escaped", body: "x"}}, testLimits, "not a path beneath"},
		{"absolute", []entry{{typ: tar.TypeReg, name: "/etc/evil", body: "x"}}, testLimits, "not a path beneath"},
		{"unknown tree", []entry{{typ: tar.TypeReg, name: "home/x", body: "x"}}, testLimits, "not a path beneath"},
		{"write through a planted link", []entry{
			{typ: tar.TypeSymlink, name: "workspace/link", link: outside},
			{typ: tar.TypeReg, name: "workspace/link/pwned", body: "x"},
		}, testLimits, "workspace/link/pwned"},
		{"hard link", []entry{{typ: tar.TypeLink, name: "workspace/h", link: "/etc/shadow"}}, testLimits, "is not a directory, a file or a symbolic link"},
		{"device", []entry{{typ: tar.TypeChar, name: "workspace/tty"}}, testLimits, "is not a directory, a file or a symbolic link"},
		{"too large", []entry{{typ: tar.TypeReg, name: "workspace/big", body: strings.Repeat("x", 2048)}}, Limits{Bytes: 1024, Entries: 10}, "more than 1024 bytes"},
		{"too many", []entry{{typ: tar.TypeDir, name: "workspace/a/"}, {typ: tar.TypeDir, name: "workspace/b/"}, {typ: tar.TypeDir, name: "workspace/c/"}}, Limits{Bytes: 1024, Entries: 2}, "more than 2 files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := t.TempDir()
			err := ReadTrees(archive(t, tc.entries...), map[string]string{"workspace": ws, "out": t.TempDir()}, tc.lim)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ReadTrees = %v, want an error about %q", err, tc.want)
			}
			if left, _ := os.ReadDir(outside); len(left) != 0 {
				t.Fatalf("something landed outside the tree: %v", left)
			}
		})
	}
}

// A file that replaces a link the same stream made earlier replaces the link, not its target.
func TestAFileReplacesALinkInsteadOfWritingThroughIt(t *testing.T) {
	ws := t.TempDir()
	write(t, filepath.Join(ws, "target"), "keep", 0o644)
	err := ReadTrees(archive(t,
		entry{typ: tar.TypeSymlink, name: "workspace/a", link: "target"},
		entry{typ: tar.TypeReg, name: "workspace/a", body: "new"},
	), map[string]string{"workspace": ws}, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(ws, "target")); string(got) != "keep" {
		t.Errorf("target = %q: written through the link", got)
	}
	if fi, err := os.Lstat(filepath.Join(ws, "a")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("a is not a regular file: %v %v", fi, err)
	}
}

func FuzzReadTrees(f *testing.F) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "workspace/a", Size: 1, Mode: 0o644})
	_, _ = tw.Write([]byte("x"))
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "workspace/l", Linkname: "/"})
	_ = tw.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		outside := t.TempDir()
		dir := filepath.Join(outside, "tree")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = ReadTrees(bytes.NewReader(data), map[string]string{"workspace": dir}, Limits{Bytes: 1 << 16, Entries: 100})
		entries, _ := os.ReadDir(outside)
		if len(entries) != 1 {
			t.Fatalf("ReadTrees wrote beside its tree: %v", entries)
		}
	})
}
