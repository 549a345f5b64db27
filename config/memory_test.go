package config

import (
	"strings"
	"testing"
)

// A memory limit Docker would refuse, or one the machine cannot give, is an error at its place
// when the routine loads, not when the job starts.
func TestMemoryLimitsOutOfRangeAreRefusedWhereTheyAreWritten(t *testing.T) {
	t.Cleanup(func() { HostMemory = physicalMemory })
	HostMemory = func() int64 { return 8 << 30 }
	const head = "on: push\ndefaults: {image: i}\nagents:\n"
	tests := []struct{ name, memory, want string }{
		{"bytes below Docker's minimum", "2000", "f.yaml:4:41: memory 2000 (2000 bytes) is below Docker's minimum of 6m; a bare number is bytes, so write a size like 512m or 2g"},
		{"just below the minimum", "5m", "f.yaml:4:41: memory 5m (5242880 bytes) is below Docker's minimum of 6m"},
		{"more than the machine has", "2TB", "f.yaml:4:41: memory 2TB is more than this machine's 8g; the container could never use it: set at most 8g"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := Parse("f.yaml", []byte(head+"  a: {command: [x], resources: {memory: "+tt.memory+"}}\n"))
			if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tt.want) {
				t.Errorf("errors = %v, want one starting %q", errs, tt.want)
			}
		})
	}
	for _, ok := range []string{"6m", "512m", "8g", "6291456"} {
		if _, errs := Parse("f.yaml", []byte(head+"  a: {command: [x], resources: {memory: "+ok+"}}\n")); errs != nil {
			t.Errorf("memory %s: %v", ok, errs)
		}
	}
}
