package procid

import (
	"os/exec"
	"testing"
)

func TestSelfIsAliveAndAKilledProcessIsGone(t *testing.T) {
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if self.Gone() {
		t.Fatalf("%s: this process is reported gone", self)
	}
	// A runner exec that died while this process took over its pid is gone too.
	earlier := self
	earlier.Start--
	if !earlier.Gone() {
		t.Errorf("%s: an earlier process whose pid this one now holds is not reported gone", earlier)
	}
	back, err := Parse(self.String())
	if err != nil || back != self {
		t.Fatalf("Parse(%q) = %+v, %v", self.String(), back, err)
	}

	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child := ID{Host: self.Host, PID: cmd.Process.Pid}
	if child.Start, err = startTime(child.PID); err != nil {
		t.Fatal(err)
	}
	if child.Gone() {
		t.Fatalf("%s: a running child is reported gone", child)
	}
	reused := child
	reused.Start++
	if !reused.Gone() {
		t.Errorf("%s: a pid now held by another process (other start time) is not reported gone", reused)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if !child.Gone() {
		t.Errorf("%s: a killed and reaped child is not reported gone", child)
	}
	other := child
	other.Host += ".elsewhere"
	if other.Gone() {
		t.Errorf("%s: a process of another host can never be known gone", other)
	}
}

func TestParseRefusesGarbage(t *testing.T) {
	for _, s := range []string{"", "x", "h:1", "h:x:1", "h:1:x", ":1:2", "h:0:1", "h:-1:2"} {
		if id, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", s, id)
		}
	}
	if id, err := Parse("a:b:12:34"); err != nil || id.Host != "a:b" || id.PID != 12 || id.Start != 34 {
		t.Errorf("Parse of a host with a colon = %+v, %v", id, err)
	}
}
