package sandbox

import (
	"fmt"
	"strings"
	"testing"
)

func TestContainerEnv(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", maxEnvPrompt+1)
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"declared env, secrets and the contract, sorted",
			Spec{Env: map[string]string{"B": "1"}, Secrets: map[string]string{"A": "s"}, Prompt: "p"},
			"A=s|AGENT_OUTPUT_DIR=/agent/out|AGENT_PROMPT=p|B=1|HOME=/tmp"},
		{"the contract wins over a declared variable of the same name",
			Spec{Env: map[string]string{"HOME": "/root", "AGENT_OUTPUT_DIR": "/x"}},
			"AGENT_OUTPUT_DIR=/agent/out|AGENT_PROMPT=|HOME=/tmp"},
		{"a prompt over the kernel's limit for one variable stays out of the env",
			Spec{Prompt: long},
			"AGENT_OUTPUT_DIR=/agent/out|HOME=/tmp"},
		{"proxy env only applies with an allow-list",
			Spec{Network: Network{Mode: NetworkOpen, ProxyEnv: map[string]string{"HTTPS_PROXY": "http://p:3128"}}},
			"AGENT_OUTPUT_DIR=/agent/out|AGENT_PROMPT=|HOME=/tmp"},
		{"proxy env is added with an allow-list",
			Spec{Network: Network{Mode: NetworkAllow, ProxyEnv: map[string]string{"HTTPS_PROXY": "http://p:3128"}}},
			"AGENT_OUTPUT_DIR=/agent/out|AGENT_PROMPT=|HOME=/tmp|HTTPS_PROXY=http://p:3128"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(containerEnv(&tt.spec), "|"); got != tt.want {
				t.Errorf("env = %s\nwant  %s", got, tt.want)
			}
		})
	}
}

func TestDefaultOwnerFollowsTheRunnersPrivileges(t *testing.T) {
	was := runnerIDs
	t.Cleanup(func() { runnerIDs = was })
	d := NewDocker(nil, Options{})

	runnerIDs = func() (int, int) { return 0, 0 }
	if uid, gid := DefaultOwner(); fmt.Sprintf("%d:%d", uid, gid) != DefaultUser {
		t.Errorf("a root runner: DefaultOwner() = %d, %d; want DefaultUser %s", uid, gid, DefaultUser)
	}
	if cfg, _, _ := d.ContainerConfig(&Spec{Image: "x"}); cfg.User != DefaultUser {
		t.Errorf("a root runner: the container's user is %q, want %s", cfg.User, DefaultUser)
	}

	// Without root the runner cannot give the workspace away: its agents run as the runner.
	runnerIDs = func() (int, int) { return 1000, 1001 }
	if uid, gid := DefaultOwner(); uid != 1000 || gid != 1001 {
		t.Errorf("an ordinary runner: DefaultOwner() = %d, %d; want its own 1000, 1001", uid, gid)
	}
	if cfg, _, _ := d.ContainerConfig(&Spec{Image: "x"}); cfg.User != "1000:1001" {
		t.Errorf("an ordinary runner: the container's user is %q, want 1000:1001", cfg.User)
	}
	if cfg, _, _ := d.ContainerConfig(&Spec{Image: "x", User: "5:6"}); cfg.User != "5:6" {
		t.Errorf("a declared user is kept: %q", cfg.User)
	}
}
