package sandbox

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// The hard deadline. The runner's own timer stops an agent at its timeout only while the
// runner lives: a runner killed with SIGKILL would leave the container running forever.
// Docker has no wall-clock limit for a container (StopTimeout only bounds a stop someone
// asks for), so the deadline is enforced inside the container, by a supervisor the engine
// runs without the runner: the runner's own static executable, bind-mounted read-only at
// InitPath, whose hidden InitCommand starts the agent, forwards signals, reaps zombies and at
// the deadline sends SIGTERM, then SIGKILL after the grace period, and exits ExitDeadline.
const (
	InitCommand = "__init"
	InitPath    = "/.agentrunner/init"
	// ExitDeadline is the supervisor's exit code at the deadline, as timeout(1)'s.
	ExitDeadline = 124
)

// initArgv wraps argv in the supervisor with the given timeout and grace.
func initArgv(argv []string, timeout, grace time.Duration) []string {
	return append([]string{InitPath, InitCommand, "--timeout", timeout.String(), "--grace", grace.String(), "--"}, argv...)
}

// Supervise is the supervisor's main (`runner __init --timeout D --grace D -- argv...`); it
// returns the exit code: the agent's, or ExitDeadline when the deadline stopped it.
func Supervise(args []string) int {
	fs := flag.NewFlagSet(InitCommand, flag.ContinueOnError)
	timeout := fs.Duration("timeout", time.Hour, "deadline after start")
	grace := fs.Duration("grace", 10*time.Second, "time between SIGTERM and SIGKILL")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "agentrunner init: usage: __init --timeout D --grace D -- argv...")
		return 2
	}
	argv := fs.Args()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	path := argv[0]
	if lp, err := exec.LookPath(path); err == nil {
		path = lp
	}
	// The agent and everything it starts form one process group, so signals reach them all.
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "agentrunner init: start %s: %v\n", argv[0], err)
		return 127
	}
	exited := make(chan int, 1)
	go reapChildren(pid, exited)

	deadline := time.NewTimer(*timeout)
	var kill <-chan time.Time
	timedOut := false
	for {
		select {
		case code := <-exited:
			if timedOut {
				return ExitDeadline
			}
			return code
		case s := <-sigs:
			_ = syscall.Kill(-pid, s.(syscall.Signal))
		case <-deadline.C:
			fmt.Fprintf(os.Stderr, "agentrunner init: deadline of %s passed; stopping the agent\n", *timeout)
			timedOut = true
			_ = syscall.Kill(-pid, syscall.SIGTERM)
			kill = time.After(*grace)
		case <-kill:
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			// Whatever left the group dies with the container once this process ends.
			return ExitDeadline
		}
	}
}

// reapChildren waits for every child (the supervisor may be PID 1 and inherit orphans) and
// sends the agent's exit code once it has ended.
func reapChildren(agent int, exited chan<- int) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return
		}
		if pid != agent {
			continue
		}
		code := ws.ExitStatus()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		exited <- code
	}
}
