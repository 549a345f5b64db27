package kubetest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The kubelet sets these machine-wide (they are not per namespace); the node puts back what
// they were.
var kubeletSysctls = []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"}

const (
	machineLockPath = "/tmp/agentrunner-kubetest-node.lock"
	// sysctlsPath holds the values to put back while a node runs: a node that died without
	// stopping leaves it for the next to restore.
	sysctlsPath = "/tmp/agentrunner-kubetest-node.sysctls"
)

// machineLock is held while a real node runs on this machine.
type machineLock struct{ f *os.File }

func lockMachine() (*machineLock, error) {
	f, err := os.OpenFile(machineLockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", machineLockPath, err)
	}
	l := &machineLock{f: f}
	// Holding the lock, nothing of another node is alive: what is left is a dead node's.
	sweepDeadNodes()
	if err := restoreSysctls(); err != nil {
		l.release()
		return nil, err
	}
	saved := map[string]string{}
	for _, k := range kubeletSysctls {
		v, err := os.ReadFile(filepath.Join("/proc/sys", k))
		if err != nil {
			l.release()
			return nil, err
		}
		saved[k] = strings.TrimSpace(string(v))
	}
	data, _ := json.Marshal(saved)
	if err := os.WriteFile(sysctlsPath, data, 0o600); err != nil {
		l.release()
		return nil, err
	}
	return l, nil
}

func (l *machineLock) release() {
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
}

func restoreSysctls() error {
	data, err := os.ReadFile(sysctlsPath)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	saved := map[string]string{}
	if err := json.Unmarshal(data, &saved); err != nil {
		return fmt.Errorf("%s: %w", sysctlsPath, err)
	}
	for k, v := range saved {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			return fmt.Errorf("restore %s: %w", k, err)
		}
	}
	return os.Remove(sysctlsPath)
}

// stop ends the node and removes everything it made: its pods' containers, mounts and
// network namespaces, its cgroups, its own network namespace and link, its files; and puts
// the sysctls back.
func (n *Node) stop() {
	if n.procs.exited() == "" && len(n.procs.cmds) > 0 {
		n.drain(time.Minute)
	}
	n.procs.stop(15 * time.Second)
	if n.forward != nil {
		n.forward.Close()
	}
	killShims(n.sock)
	unmountBeneath(n.dir)
	removeCgroup(n.cgroup)
	if n.netns != "" {
		_ = sh("ip", "netns", "del", n.netns)
	}
	removeLogLinks(n.dir)
	if n.madeLogDir {
		os.Remove(containerLogDir) // only if empty
	}
	if n.dir != "" {
		os.RemoveAll(n.dir)
	}
	if n.machine != nil {
		if err := restoreSysctls(); err != nil {
			fmt.Fprintln(os.Stderr, "kubetest:", err)
		}
		n.machine.release()
	}
}

// drain deletes the pods still on the node and waits until the kubelet has stopped their
// containers and torn down their networks (containerd removes the pods' network namespaces).
func (n *Node) drain(limit time.Duration) {
	cli, err := kubernetes.NewForConfig(n.c.Admin())
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	zero := int64(0)
	pods, err := cli.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.Name})
	if err == nil {
		for _, p := range pods.Items {
			_ = cli.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		}
	}
	for ctx.Err() == nil {
		out, err := exec.Command("ctr", "--address", n.sock, "-n", "k8s.io", "tasks", "ls", "-q").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			// The sandboxes' networks go at their stop; give the kubelet its last round.
			time.Sleep(2 * time.Second)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// killShims kills containerd's shims of the node (they outlive containerd by design), and with
// them the containers they hold.
func killShims(sock string) {
	if sock == "" {
		return
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if strings.Contains(args[0], "containerd-shim") && slices.Contains(args, sock) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// unmountBeneath detaches every mount under dir (rootfs overlays, /dev/shm, emptyDirs in
// memory, Secrets' volumes), deepest first.
func unmountBeneath(dir string) {
	if dir == "" {
		return
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			points = append(points, fields[4])
		}
	}
	f.Close()
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// removeCgroup kills what is left in the node's cgroups and removes them, deepest first.
func removeCgroup(name string) {
	if name == "" {
		return
	}
	hierarchies, _ := os.ReadDir("/sys/fs/cgroup")
	for _, h := range hierarchies {
		root := filepath.Join("/sys/fs/cgroup", h.Name(), name)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if procs, err := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs")); err == nil {
				for _, f := range strings.Fields(string(procs)) {
					if pid, err := strconv.Atoi(f); err == nil {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
			for try := 0; try < 50 && os.Remove(dirs[i]) != nil; try++ {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// containerLogDir is where the kubelet links its containers' logs (fixed in the kubelet).
const containerLogDir = "/var/log/containers"

// removeLogLinks removes the kubelet's links in containerLogDir into the node's files.
func removeLogLinks(dir string) {
	if dir == "" {
		return
	}
	entries, _ := os.ReadDir(containerLogDir)
	for _, e := range entries {
		p := filepath.Join(containerLogDir, e.Name())
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, dir+"/") {
			os.Remove(p)
		}
	}
}

// sweepDeadNodes removes what nodes that died without stopping left: their network
// namespaces, cgroups, shims, mounts and files.
func sweepDeadNodes() {
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "agentrunner-kt-") {
				_ = sh("ip", "netns", "del", f[0])
			}
		}
	}
	hierarchies, _ := os.ReadDir("/sys/fs/cgroup")
	seen := map[string]bool{}
	for _, h := range hierarchies {
		entries, _ := os.ReadDir(filepath.Join("/sys/fs/cgroup", h.Name()))
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "agentrunner-kt-") {
				seen[e.Name()] = true
			}
		}
	}
	for name := range seen {
		removeCgroup(name)
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "kn-*"))
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "containerd.toml")); err != nil {
			continue
		}
		sock := filepath.Join(d, "containerd.sock")
		killShims(sock)
		unmountBeneath(d)
		removeLogLinks(d)
		os.RemoveAll(d)
	}
}
