package english

import "testing"

func TestCount(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		n    int
		noun string
		want string
	}{
		{0, "agent", "0 agents"},
		{1, "agent", "1 agent"},
		{2, "job", "2 jobs"},
		{1, "changed file", "1 changed file"},
		{-1, "file", "-1 files"},
	} {
		if got := Count(tt.n, tt.noun); got != tt.want {
			t.Errorf("Count(%d, %q) = %q, want %q", tt.n, tt.noun, got, tt.want)
		}
	}
}
