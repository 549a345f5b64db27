package kubetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// procs are the processes a harness started, each with its output in a log file of dir
// (printed when something fails to come up), stopped in the reverse order.
type procs struct {
	dir  string
	cmds []*exec.Cmd
	logs []*os.File
}

// run starts path with args; its own process group, and killed with the test binary.
func (p *procs) run(name, path string, args ...string) (*exec.Cmd, error) {
	log, err := os.Create(filepath.Join(p.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.cmds, p.logs = append(p.cmds, cmd), append(p.logs, log)
	go func() { _ = cmd.Wait() }()
	return cmd, nil
}

// exited names a process that is no longer running, if one is not.
func (p *procs) exited() string {
	for _, c := range p.cmds {
		if c.Process.Signal(syscall.Signal(0)) != nil {
			return filepath.Base(c.Path)
		}
	}
	return ""
}

// tail is the end of each process's log, for an error message.
func (p *procs) tail() string {
	var b strings.Builder
	for _, l := range p.logs {
		data, _ := os.ReadFile(l.Name())
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(l.Name()), data)
	}
	return b.String()
}

// stop ends the processes, last started first: SIGTERM, then SIGKILL after grace.
func (p *procs) stop(grace time.Duration) {
	for i := len(p.cmds) - 1; i >= 0; i-- {
		stopProcess(p.cmds[i], grace)
	}
	for _, l := range p.logs {
		l.Close()
	}
	p.cmds, p.logs = nil, nil
}

func stopProcess(c *exec.Cmd, grace time.Duration) {
	pid := c.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	for deadline := time.Now().Add(grace); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
	}
}
