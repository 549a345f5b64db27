package sandbox_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/sandbox"
)

func TestExecGone(t *testing.T) {
	host, _ := os.Hostname()
	self := sandbox.ExecOwner()
	if !strings.HasPrefix(self, "exec:"+host+":"+strconv.Itoa(os.Getpid())+":") {
		t.Fatalf("ExecOwner() = %q, want exec:%s:%d:<start>", self, host, os.Getpid())
	}
	for _, owner := range []string{self, "exec:another-host:1:1", "exec:garbage", "daemon:x", ""} {
		if sandbox.ExecGone(owner) {
			t.Errorf("ExecGone(%q) = true, want false (alive, or nothing proves it gone)", owner)
		}
	}
}
