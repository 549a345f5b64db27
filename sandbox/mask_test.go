package sandbox

import (
	"strings"
	"testing"
)

func TestMaskingWriter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets []string
		writes  []string
		want    string
	}{
		{"a secret in one write is masked", []string{"hunter2"}, []string{"pw=hunter2\n"}, "pw=***\n"},
		{"a secret split across writes is masked", []string{"hunter2"}, []string{"pw=hun", "te", "r2 ok"}, "pw=*** ok"},
		{"a secret split byte by byte is masked", []string{"abc"}, []string{"x", "a", "b", "c", "y"}, "x***y"},
		{"a partial secret at the end is flushed as is", []string{"hunter2"}, []string{"pw=hunt"}, "pw=hunt"},
		{"a false start is written once the mismatch shows", []string{"hunter2"}, []string{"hunhunter2"}, "hun***"},
		{"every occurrence is masked", []string{"k"}, []string{"kkxk"}, "******x***"},
		{"the longer of two overlapping secrets wins", []string{"abc", "abcdef"}, []string{"abcdef abc"}, "*** ***"},
		{"empty secrets are ignored", []string{""}, []string{"text"}, "text"},
		{"no secrets pass through", nil, []string{"a", "b"}, "ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			m := NewMaskingWriter(&b, tt.secrets)
			for _, w := range tt.writes {
				n, err := m.Write([]byte(w))
				if err != nil || n != len(w) {
					t.Fatalf("Write(%q) = %d, %v; want %d, nil", w, n, err, len(w))
				}
			}
			if err := m.Flush(); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("got %q, want %q", b.String(), tt.want)
			}
		})
	}
}

func TestCleanDockerError(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"Error response from daemon: No such image: x:1", "No such image: x:1"},
		{`Error response from daemon: OCI runtime create failed: exec: "nope": executable file not found in $PATH: unknown`,
			`OCI runtime create failed: exec: "nope": executable file not found in $PATH`},
		{"plain", "plain"},
	}
	for _, tt := range tests {
		if got := CleanDockerError(errString(tt.in)); got != tt.want {
			t.Errorf("CleanDockerError(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestValidateRefusesBadSpecs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := func() *Spec {
		return &Spec{RunID: "r", JobID: "j", Image: "img", WorkspaceDir: dir, OutputDir: dir}
	}
	tests := []struct {
		name   string
		mutate func(*Spec)
		want   string // in the error; empty means valid
	}{
		{"a complete spec is valid", func(*Spec) {}, ""},
		{"an allow-list is refused until the egress proxy exists", func(s *Spec) {
			s.Network = Network{Mode: NetworkAllow, Allow: []string{"api.anthropic.com:443"}}
		}, "needs the runner's egress proxy"},
		{"an allow-list on a proxy network is accepted", func(s *Spec) {
			s.Network = Network{Mode: NetworkAllow, DockerNetwork: "agentrunner-r"}
		}, ""},
		{"an unknown network mode is refused", func(s *Spec) { s.Network.Mode = "bridge" }, `"bridge" is not none, open or allow`},
		{"an unknown pull policy is refused", func(s *Spec) { s.PullPolicy = "sometimes" }, `"sometimes" is not never`},
		{"a relative workspace is refused", func(s *Spec) { s.WorkspaceDir = "ws" }, "not an absolute host path"},
		{"a missing output dir is refused", func(s *Spec) { s.OutputDir = dir + "/nope" }, "no such file"},
		{"a bad user is refused", func(s *Spec) { s.User = "10001:" }, "is not uid[:gid]"},
		{"a tiny memory limit is refused", func(s *Spec) { s.Resources.Memory = 1024 }, "below Docker's minimum"},
		{"an env name with = is refused", func(s *Spec) { s.Env = map[string]string{"A=B": "x"} }, "not a valid variable name"},
		{"an empty image is refused", func(s *Spec) { s.Image = "" }, "Image: empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := good()
			tt.mutate(s)
			err := validate(s)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestMaskString(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in      string
		secrets []string
		want    string
	}{
		{"pw=hunter2, again hunter2", []string{"hunter2"}, "pw=***, again ***"},
		{"ends with a partial hunt", []string{"hunter2"}, "ends with a partial hunt"},
		{"abcdef abc", []string{"abc", "abcdef"}, "*** ***"},
		{"no secrets", nil, "no secrets"},
		{"", []string{"x"}, ""},
	} {
		if got := MaskString(tt.in, tt.secrets); got != tt.want {
			t.Errorf("MaskString(%q, %q) = %q, want %q", tt.in, tt.secrets, got, tt.want)
		}
	}
}
