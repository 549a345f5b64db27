package safefile

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const marker = "MARKER-8f1c2d-host-secret"

// tree lays out a directory as an agent might leave it, next to a host file with a marker.
func tree(t *testing.T) (dir string) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "out")
	host := filepath.Join(base, "host")
	for _, d := range []string{dir, host, filepath.Join(dir, "sub"), filepath.Join(dir, "emptydir")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(host, "secret.txt"), marker)
	write(filepath.Join(host, "report.md"), marker)
	write(filepath.Join(dir, "report.md"), "# fine\n")
	write(filepath.Join(dir, "sub", "nested.md"), "nested\n")
	write(filepath.Join(dir, "big"), strings.Repeat("x", 101))
	write(filepath.Join(dir, "exact"), strings.Repeat("x", 100))
	write(filepath.Join(dir, "plain"), "plain")
	link := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	link(filepath.Join(host, "secret.txt"), "abs-link")
	link("../host/secret.txt", "rel-link")
	link("report.md", "inner-link")
	link(host, "linkdir")
	link("/proc/self/environ", "environ")
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatalf("mknod (the tests run as root, as the runner does): %v", err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return dir
}

// withResolver makes Open resolve the way a kernel of that mode would: "openat2", or
// "fallback" as on kernels without it (before 5.6), component by component.
func withResolver(t *testing.T, mode string) {
	if mode != "fallback" {
		return
	}
	old := openat2
	openat2 = func(int, string, *unix.OpenHow) (int, error) { return -1, unix.ENOSYS }
	t.Cleanup(func() { openat2 = old })
}

func TestRead(t *testing.T) {
	for _, mode := range []string{"openat2", "fallback"} {
		t.Run(mode, func(t *testing.T) {
			withResolver(t, mode)
			dir := tree(t)
			for _, c := range []struct {
				name    string
				content string // what a successful read gives
				want    string // or what its error says
				is      error
			}{
				{name: "report.md", content: "# fine\n"},
				{name: "sub/nested.md", content: "nested\n"},
				{name: "./sub//nested.md", content: "nested\n"},
				{name: "exact", content: strings.Repeat("x", 100)},
				{name: "missing", want: "no such file", is: fs.ErrNotExist},
				{name: "sub/missing", want: "no such file", is: fs.ErrNotExist},
				{name: "abs-link", want: "abs-link is not a regular file (a symlink)", is: ErrNotRegular},
				{name: "rel-link", want: "rel-link is not a regular file (a symlink)", is: ErrNotRegular},
				{name: "inner-link", want: "inner-link is not a regular file (a symlink)", is: ErrNotRegular},
				{name: "environ", want: "environ is not a regular file (a symlink)", is: ErrNotRegular},
				{name: "linkdir/report.md", want: "linkdir/report.md is not a regular file: linkdir is a symlink, not a directory", is: ErrNotRegular},
				{name: "linkdir/secret.txt", want: "linkdir is a symlink", is: ErrNotRegular},
				{name: "plain/x", want: "plain is a regular file, not a directory", is: ErrNotRegular},
				{name: "fifo", want: "fifo is not a regular file (a named pipe)", is: ErrNotRegular},
				{name: "null", want: "null is not a regular file (a character device)", is: ErrNotRegular},
				{name: "sock", want: "sock is not a regular file (a socket)", is: ErrNotRegular},
				{name: "emptydir", want: "emptydir is not a regular file (a directory)", is: ErrNotRegular},
				{name: "big", want: "big is larger than 100 bytes, the limit", is: ErrTooLarge},
				{name: "../host/secret.txt", want: `"../host/secret.txt" leaves its directory`},
				{name: "sub/../../host/secret.txt", want: "leaves its directory"},
				{name: "/etc/passwd", want: "is not a relative file name"},
				{name: "", want: "is not a relative file name"},
				{name: ".", want: "is not a relative file name"},
			} {
				t.Run(c.name, func(t *testing.T) {
					type answer struct {
						b   []byte
						err error
					}
					done := make(chan answer, 1)
					go func() {
						b, err := Read(dir, c.name, 100)
						done <- answer{b, err}
					}()
					var a answer
					select {
					case a = <-done:
					case <-time.After(5 * time.Second):
						t.Fatalf("Read(%q) still blocked after 5s", c.name)
					}
					if strings.Contains(string(a.b), marker) || a.err != nil && strings.Contains(a.err.Error(), marker) {
						t.Fatalf("Read(%q) gave the host file's content: %q, %v", c.name, a.b, a.err)
					}
					if c.want == "" {
						if a.err != nil || string(a.b) != c.content {
							t.Errorf("Read(%q) = %q, %v; want %q", c.name, a.b, a.err, c.content)
						}
						return
					}
					if a.err == nil || !strings.Contains(a.err.Error(), c.want) {
						t.Errorf("Read(%q) = %q, %v; want an error saying %q", c.name, a.b, a.err, c.want)
						return
					}
					if c.is != nil && !errors.Is(a.err, c.is) {
						t.Errorf("Read(%q) error = %v, want errors.Is %v", c.name, a.err, c.is)
					}
				})
			}
		})
	}
}

// A mount point beneath the directory is refused: what lies there is not the directory's.
func TestReadRefusesOtherMounts(t *testing.T) {
	for _, mode := range []string{"openat2", "fallback"} {
		t.Run(mode, func(t *testing.T) {
			withResolver(t, mode)
			dir := t.TempDir()
			mnt := filepath.Join(dir, "mnt")
			if err := os.Mkdir(mnt, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
				t.Fatalf("mount a tmpfs (the tests run as root, as the runner does): %v", err)
			}
			t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
			if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Read(dir, "mnt/f", 10)
			if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "crosses a mount point") {
				t.Errorf("Read through a mount point = %v, want it refused", err)
			}
		})
	}
}

func TestOpenStreams(t *testing.T) {
	dir := tree(t)
	f, err := Open(dir, "sub/nested.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if want := filepath.Join(dir, "sub", "nested.md"); f.Name() != want {
		t.Errorf("name = %s, want %s", f.Name(), want)
	}
	b := make([]byte, 64)
	n, _ := f.Read(b)
	if string(b[:n]) != "nested\n" {
		t.Errorf("read %q", b[:n])
	}
}
