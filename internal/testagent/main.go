// Command testagent is a stand-in for a coding agent, used by integration tests. It runs in a
// `FROM scratch` image (built by internal/dockertest), so it is static and needs nothing from
// the image: it even commits with go-git because the image has no git binary.
//
// Its argv is a sequence of steps, each a verb and its fixed number of arguments, run in order:
//
//	testagent write a.txt=hello commit "add a" output verdict=yes exit 3
//
// Paths are relative to the working directory (/workspace in the sandbox); outputs, the report
// and findings go to $AGENT_OUTPUT_DIR. A failing step prints why and exits 1, except `exit N`.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// step is one verb: how many arguments it takes and what it does with them.
type step struct {
	nargs int
	run   func(args []string) error
}

var steps = map[string]step{
	"write":       {1, func(a []string) error { return writeFile(a[0], os.O_TRUNC) }},
	"append":      {1, func(a []string) error { return writeFile(a[0], os.O_APPEND) }},
	"delete":      {1, func(a []string) error { return os.RemoveAll(a[0]) }},
	"binary":      {1, writeBinary},
	"commit":      {1, commit},
	"output":      {1, outputString},
	"output-json": {1, outputJSON},
	"report":      {1, report},
	"finding":     {1, finding},
	"sleep":       {1, sleep},
	"exit":        {1, exitWith},
	"alloc":       {1, alloc},
	"forkbomb":    {0, func([]string) error { return forkbomb() }},
	"hold":        {0, func([]string) error { hold(); return nil }},
	"escape":      {0, func([]string) error { return escape() }},
	"env":         {0, func([]string) error { return printEnv() }},
	"echo-prompt": {0, func([]string) error { fmt.Println(os.Getenv("AGENT_PROMPT")); return nil }},
	"print":       {1, func(a []string) error { fmt.Println(a[0]); return nil }},
	// An orchestrator's steps: write the workflow, or (workflow-retry) write it only when the
	// runner handed back the problems of the last one.
	"workflow":       {1, func(a []string) error { return writeWorkflow(a[0], false) }},
	"workflow-retry": {1, func(a []string) error { return writeWorkflow(a[0], true) }},
	"eprint":         {1, func(a []string) error { fmt.Fprintln(os.Stderr, a[0]); return nil }},
	"connect":        {1, connect},
	// Hostile moves on files the runner reads afterwards. A path starting with @out/ is under
	// $AGENT_OUTPUT_DIR; any other is relative to the working directory.
	"symlink": {1, symlink}, // LINK=TARGET
	"mkfifo":  {1, func(a []string) error { return syscall.Mkfifo(agentPath(a[0]), 0o644) }},
	"fill":    {1, fill},       // PATH=SIZE: SIZE bytes of text lines (512m, 2g, …)
	"chmod":   {1, chmodFile},  // PATH=MODE (octal)
	"rename":  {1, renameFile}, // OLD=NEW
	// printq prints a Go-quoted string unquoted, so a test can make the agent print escape
	// sequences: printq '"\x1b]52;c;aGk=\a"'.
	"printq": {1, printQuoted},
	// tick prints "tick 1" … "tick N", one line every interval: output that arrives over time.
	"tick": {2, tick}, // N INTERVAL
	// A preset's flags the runner adds to argv at run time, as the CLI would see them: `-c K=V`
	// (codex's config override) prints `FLAG -c K=V`; `-- PROMPT` (the separator and the
	// prompt after it) does nothing.
	"-c": {1, func(a []string) error { fmt.Println("FLAG -c " + a[0]); return nil }},
	"--": {1, func([]string) error { return nil }},
	// claude's connector flag: `--mcp-config FILE` prints `FLAG --mcp-config FILE`.
	"--mcp-config": {1, func(a []string) error { fmt.Println("FLAG --mcp-config " + a[0]); return nil }},
}

func main() {
	args := os.Args[1:]
	for len(args) > 0 {
		verb := args[0]
		s, ok := steps[verb]
		if !ok {
			fail(fmt.Errorf("unknown step %q", verb))
		}
		if len(args)-1 < s.nargs {
			fail(fmt.Errorf("step %q needs %d argument(s)", verb, s.nargs))
		}
		if err := s.run(args[1 : 1+s.nargs]); err != nil {
			fail(fmt.Errorf("%s: %w", verb, err))
		}
		args = args[1+s.nargs:]
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "testagent:", err)
	os.Exit(1)
}

// splitKV splits "key=value" at the first '='.
func splitKV(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return "", "", fmt.Errorf("%q is not key=value", s)
	}
	return k, v, nil
}

func writeFile(arg string, mode int) error {
	path, content, err := splitKV(arg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|mode, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeBinary writes bytes that git must treat as binary (NUL and invalid UTF-8).
func writeBinary(a []string) error {
	data := make([]byte, 256)
	for i := range data {
		data[i] = byte(i)
	}
	return os.WriteFile(a[0], data, 0o644)
}

// commit is `git add -A && git commit -m msg` with go-git.
func commit(a []string) error {
	repo, err := git.PlainOpenWithOptions(".", &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return fmt.Errorf("open repository: %w", err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return err
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return fmt.Errorf("add: %w", err)
	}
	sig := &object.Signature{Name: "testagent", Email: "testagent@agentrunner.invalid", When: time.Now()}
	// All stages deletions too, which AddOptions.All does not always do in go-git.
	_, err = wt.Commit(a[0], &git.CommitOptions{All: true, Author: sig, Committer: sig, AllowEmptyCommits: true})
	return err
}

// agentPath maps @out/NAME to the output directory; other paths stay as they are.
func agentPath(p string) string {
	if rest, ok := strings.CutPrefix(p, "@out/"); ok {
		return filepath.Join(outDir(), rest)
	}
	return p
}

func symlink(a []string) error {
	link, target, err := splitKV(a[0])
	if err != nil {
		return err
	}
	link = agentPath(link)
	_ = os.Remove(link)
	return os.Symlink(target, link)
}

// fill writes a file of size bytes as 64-byte numbered lines, streamed so the agent itself
// stays small whatever the size.
func fill(a []string) error {
	path, sz, err := splitKV(a[0])
	if err != nil {
		return err
	}
	n, err := parseSize(sz)
	if err != nil {
		return err
	}
	path = agentPath(path)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<16)
	var line int64
	for written := int64(0); written < n; {
		buf = buf[:0]
		for len(buf) < cap(buf)-64 {
			buf = fmt.Appendf(buf, "%063d\n", line)
			line++
		}
		if rest := n - written; int64(len(buf)) > rest {
			buf = buf[:rest]
		}
		k, err := f.Write(buf)
		written += int64(k)
		if err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

func chmodFile(a []string) error {
	path, mode, err := splitKV(a[0])
	if err != nil {
		return err
	}
	m, err := strconv.ParseUint(mode, 8, 32)
	if err != nil {
		return fmt.Errorf("mode %q: %w", mode, err)
	}
	return os.Chmod(agentPath(path), os.FileMode(m))
}

func renameFile(a []string) error {
	from, to, err := splitKV(a[0])
	if err != nil {
		return err
	}
	return os.Rename(agentPath(from), agentPath(to))
}

func printQuoted(a []string) error {
	s, err := strconv.Unquote(a[0])
	if err != nil {
		return fmt.Errorf("unquote %s: %w", a[0], err)
	}
	fmt.Println(s)
	return nil
}

func tick(a []string) error {
	n, err := strconv.Atoi(a[0])
	if err != nil {
		return err
	}
	d, err := time.ParseDuration(a[1])
	if err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		fmt.Printf("tick %d\n", i)
		if i < n {
			time.Sleep(d)
		}
	}
	return nil
}

// writeWorkflow writes yaml, or the workspace file it names as @path, as the workflow.
func writeWorkflow(yaml string, onlyOnRetry bool) error {
	if onlyOnRetry {
		if _, err := os.Stat(filepath.Join(outDir(), "workflow-errors.txt")); err != nil {
			return nil
		}
	}
	if path, ok := strings.CutPrefix(yaml, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		yaml = string(b)
	}
	return os.WriteFile(filepath.Join(outDir(), "workflow.yaml"), []byte(yaml), 0o644)
}

func outDir() string {
	if d := os.Getenv("AGENT_OUTPUT_DIR"); d != "" {
		return d
	}
	return "."
}

// mergeOutput merges one key into outputs.json, keeping what earlier steps wrote.
func mergeOutput(key string, value json.RawMessage) error {
	path := filepath.Join(outDir(), "outputs.json")
	outputs := map[string]json.RawMessage{}
	if data, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(data, &outputs); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
	outputs[key] = value
	data, err := json.MarshalIndent(outputs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func outputString(a []string) error {
	k, v, err := splitKV(a[0])
	if err != nil {
		return err
	}
	raw, _ := json.Marshal(v)
	return mergeOutput(k, raw)
}

func outputJSON(a []string) error {
	k, v, err := splitKV(a[0])
	if err != nil {
		return err
	}
	if !json.Valid([]byte(v)) {
		return fmt.Errorf("value of %q is not JSON: %s", k, v)
	}
	return mergeOutput(k, json.RawMessage(v))
}

func report(a []string) error {
	f, err := os.OpenFile(filepath.Join(outDir(), "report.md"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, a[0]); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// finding appends path:line:level:message to findings.json.
func finding(a []string) error {
	parts := strings.SplitN(a[0], ":", 4)
	if len(parts) != 4 {
		return fmt.Errorf("%q is not path:line:level:message", a[0])
	}
	line, err := strconv.Atoi(parts[1])
	if err != nil {
		return fmt.Errorf("line in %q: %w", a[0], err)
	}
	type findingJSON struct {
		Path    string `json:"path"`
		Line    int    `json:"line"`
		Level   string `json:"level"`
		Message string `json:"message"`
	}
	path := filepath.Join(outDir(), "findings.json")
	var all []findingJSON
	if data, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(data, &all); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
	all = append(all, findingJSON{parts[0], line, parts[2], parts[3]})
	data, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func sleep(a []string) error {
	d, err := time.ParseDuration(a[0])
	if err != nil {
		return err
	}
	time.Sleep(d)
	return nil
}

func exitWith(a []string) error {
	code, err := strconv.Atoi(a[0])
	if err != nil {
		return err
	}
	os.Exit(code)
	return nil
}

// parseSize reads 512m, 2g, 4096k or a plain byte count.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1<<10, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "m"):
		mult, s = 1<<20, strings.TrimSuffix(s, "m")
	case strings.HasSuffix(s, "g"):
		mult, s = 1<<30, strings.TrimSuffix(s, "g")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// alloc allocates and touches every page so the memory is really resident.
func alloc(a []string) error {
	n, err := parseSize(a[0])
	if err != nil {
		return err
	}
	buf := make([]byte, n)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	runtime.KeepAlive(buf)
	fmt.Printf("allocated %d bytes\n", len(buf))
	return nil
}

// hold blocks forever without tripping the runtime's deadlock detector.
func hold() {
	for {
		time.Sleep(time.Hour)
	}
}

// forkbomb starts children that block forever until the kernel refuses a new process; a pids
// limit makes that happen quickly. It then fails, which ends the container and its children.
func forkbomb() error {
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	started := 0
	for {
		cmd := exec.Command(self, "hold")
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("started %d processes, then: %w", started, err)
		}
		started++
	}
}

// escape tries what a hostile agent would, and prints a JSON report of what succeeded.
func escape() error {
	rep := map[string]any{}
	for name, dir := range map[string]string{
		"write_root": "/", "write_etc": "/etc", "write_usr": "/usr", "write_proc_sys": "/proc/sys",
		"write_workspace": ".", "write_out": outDir(), "write_tmp": "/tmp",
	} {
		path := filepath.Join(dir, ".testagent-escape")
		err := os.WriteFile(path, []byte("x"), 0o644)
		rep[name] = err == nil
		if err == nil {
			os.Remove(path)
		}
	}
	rep["cap_eff"] = statusField("CapEff")
	rep["no_new_privs"] = statusField("NoNewPrivs")
	rep["seccomp"] = statusField("Seccomp")
	rep["net_ip"] = canDial("1.1.1.1:53")
	rep["net_dns"] = canResolve("example.com")
	_, err := os.Stat("/var/run/docker.sock")
	rep["docker_sock"] = err == nil
	rep["setuid"] = syscall.Setuid(0) == nil
	rep["uid"] = os.Getuid()
	rep["gid"] = os.Getgid()
	data, _ := json.Marshal(rep)
	fmt.Println("ESCAPE " + string(data))
	return nil
}

// statusField is a field of /proc/self/status: CapEff, NoNewPrivs, Seccomp (2: a filter).
func statusField(name string) string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unreadable: " + err.Error()
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "missing"
}

func canDial(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func canResolve(host string) bool {
	addrs, err := net.LookupHost(host)
	return err == nil && len(addrs) > 0
}

// connect dials addr (TCP) and fails when it cannot.
func connect(a []string) error {
	c, err := net.DialTimeout("tcp", a[0], 3*time.Second)
	if err != nil {
		return err
	}
	fmt.Println("connected to", a[0])
	return c.Close()
}

func printEnv() error {
	env := os.Environ()
	sort.Strings(env)
	for _, kv := range env {
		fmt.Println(kv)
	}
	if len(env) == 0 {
		return errors.New("empty environment")
	}
	return nil
}
