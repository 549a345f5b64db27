package preset

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read testdata: %v", err)
	}
	return b
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		preset  string
		file    string
		want    Result
		wantErr error // errNoOutput, errNoResult or nil
		// finalHas is checked instead of the whole Final when the final text is long.
		finalHas string
	}{
		{preset: "claude-code", file: "claude-success.txt", want: Result{OK: true, CostUSD: 0.34641974999999997,
			InputTokens: 8 + 192 + 17004, OutputTokens: 32, Turns: 8,
			Final: "Fixed the flaky test in pkg/clock by injecting a fake clock.", SessionID: "f18f49de-5b8f-4261-99c4-dbbaa6ae0e24"}},
		{preset: "claude-code", file: "claude-noise.txt", want: Result{OK: true, CostUSD: 0.01, InputTokens: 100,
			OutputTokens: 10, Turns: 2, Final: "Done.", SessionID: "abc"}},
		{preset: "claude-code", file: "claude-max-turns.txt", want: Result{Error: "error_max_turns", CostUSD: 1.2031,
			InputTokens: 2300 + 10000 + 50000, OutputTokens: 4100, Turns: 11, SessionID: "7c0b5a3e-0d7e-4d43-9d1b-5f8a2d4f3e11"}},
		{preset: "claude-code", file: "claude-api-error.txt", want: Result{
			Error: `API Error: 401 {"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`,
			Turns: 1, SessionID: "0b4f8e2a-1111-2222-3333-444455556666",
			Final: `API Error: 401 {"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`}},
		{preset: "claude-code", file: "claude-denied.txt", want: Result{OK: true, CostUSD: 0.05, InputTokens: 8, OutputTokens: 32,
			Turns: 8, Final: "I need permission to edit test-file.txt.", SessionID: "f18f49de", Denied: []string{"Edit", "Bash"}}},
		{preset: "claude-code", file: "claude-stream-truncated.txt", wantErr: errNoResult,
			want: Result{SessionID: "e8889acf-aaaa-bbbb-cccc-ddddeeeeffff"}},
		{preset: "claude-code", file: "claude-truncated.txt", wantErr: errNoResult},

		{preset: "codex", file: "codex-success.jsonl", want: Result{OK: true, InputTokens: 24763, OutputTokens: 122, Turns: 1,
			Final: "Yep — there’s a `README.md` in the repository root.", SessionID: "0199a213-81c0-7800-8aa1-bbab2a035a53"}},
		{preset: "codex", file: "codex-turn-failed.jsonl", want: Result{Turns: 1,
			Error:     "exceeded retry limit, last status: 401 Unauthorized, request id: 9a4af5870a31a58e-WAW",
			SessionID: "0199b000-0000-7000-8000-000000000001"}},
		{preset: "codex", file: "codex-error-only.jsonl", want: Result{
			Error:     "unexpected status 404 Not Found: model gpt-9 does not exist",
			SessionID: "0199b000-0000-7000-8000-000000000002"}},
		{preset: "codex", file: "codex-retry-ok.jsonl", want: Result{OK: true, InputTokens: 1000, OutputTokens: 50, Turns: 1,
			Final: "All tests pass now.", SessionID: "t-3"}},
		{preset: "codex", file: "codex-truncated.jsonl", wantErr: errNoResult, want: Result{SessionID: "t-4"}},

		{preset: "gemini", file: "gemini-success.txt", want: Result{OK: true, InputTokens: 24939 + 100,
			OutputTokens: 20 + 154 + 5, Turns: 3, Final: "The capital of France is Paris.", SessionID: "5e2e3f4a-1b2c-4d5e-8f90-123456789abc"}},
		{preset: "gemini", file: "gemini-noise.txt", want: Result{OK: true, Final: "Done."}},
		{preset: "gemini", file: "gemini-error.txt", want: Result{SessionID: "9f9f9f9f-0000-4000-8000-000000000000",
			Error: "FatalTurnLimitedError: Reached max session turns for this session. Increase the number of turns by specifying maxSessionTurns in settings.json. (code 53)"}},
		{preset: "gemini", file: "gemini-truncated.txt", wantErr: errNoResult},

		{preset: "aider", file: "aider-success.txt", want: Result{OK: true, CostUSD: 0.03, InputTokens: 4200 + 5100,
			OutputTokens: 312 + 58, Turns: 2}, finalHas: "The loop now stops before n, so the last index is n-1."},
		{preset: "aider", file: "aider-auth-error.txt",
			want:     Result{Error: `litellm.AuthenticationError: AnthropicException - {"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`},
			finalHas: "Check your API key."},
		{preset: "aider", file: "aider-retry-ok.txt", want: Result{OK: true, InputTokens: 950, OutputTokens: 120, Turns: 1},
			finalHas: "Added the missing test."},
		{preset: "aider", file: "aider-no-usage.txt", wantErr: errNoResult, finalHas: "not a git repository"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			got, err := mustGet(t, tt.preset).Parse(readTestdata(t, tt.file))
			if got == nil {
				t.Fatal("Parse returned a nil Result")
			}
			if tt.wantErr == nil && err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Parse error = %v, want %v", err, tt.wantErr)
				}
				if got.OK || got.Error == "" {
					t.Errorf("unreadable output gave OK=%v Error=%q; want a failed result that says why", got.OK, got.Error)
				}
				// The message varies; the rest of the result is compared below.
				got.Error = ""
			}
			if tt.finalHas != "" {
				if !strings.Contains(got.Final, tt.finalHas) {
					t.Errorf("Final = %q, want it to contain %q", got.Final, tt.finalHas)
				}
				got.Final = ""
			}
			if diff := cmp.Diff(&tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseEmptyOutputFailsForEveryPreset(t *testing.T) {
	t.Parallel()
	for _, name := range Names() {
		for _, out := range []string{"", "\n  \n"} {
			r, err := mustGet(t, name).Parse([]byte(out))
			if !errors.Is(err, errNoOutput) || r == nil || r.OK || r.Error == "" {
				t.Errorf("%s.Parse(%q) = %+v, %v; want a failed result and errNoOutput", name, out, r, err)
			}
		}
	}
}

func TestParseIgnoresOtherToolsJSON(t *testing.T) {
	t.Parallel()
	// Each preset's parser must not mistake another CLI's success for its own.
	tests := []struct{ preset, file string }{
		{"claude-code", "codex-success.jsonl"},
		{"claude-code", "gemini-success.txt"},
		{"codex", "claude-success.txt"},
		{"codex", "gemini-success.txt"},
		{"gemini", "codex-success.jsonl"},
		{"gemini", "claude-success.txt"},
		{"aider", "claude-success.txt"},
	}
	for _, tt := range tests {
		r, err := mustGet(t, tt.preset).Parse(readTestdata(t, tt.file))
		if r.OK || err == nil {
			t.Errorf("%s.Parse(%s) = OK %v, err %v; want a failure", tt.preset, tt.file, r.OK, err)
		}
	}
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, preset, file string
		exit               int
		wantOK             bool
		wantErrorPrefix    string
	}{
		{name: "exit 0 and a success result is a success", preset: "claude-code", file: "claude-success.txt", wantOK: true},
		{name: "exit 0 with an error result is a failure", preset: "claude-code", file: "claude-max-turns.txt", wantErrorPrefix: "error_max_turns"},
		{name: "a non-zero exit fails even a success result", preset: "codex", file: "codex-success.jsonl", exit: 1,
			wantErrorPrefix: "exit code 1 (codex reported an error)"},
		{name: "a documented gemini exit code is explained", preset: "gemini", file: "gemini-error.txt", exit: 53,
			wantErrorPrefix: "exit code 53 (turn limit exceeded): FatalTurnLimitedError"},
		{name: "a non-zero exit with no output says only the exit code", preset: "gemini", file: "gemini-truncated.txt", exit: 41,
			wantErrorPrefix: "exit code 41 (authentication error)"},
		{name: "aider's exit code decides when its output looks fine", preset: "aider", file: "aider-success.txt", exit: 2,
			wantErrorPrefix: "exit code 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, _ := mustGet(t, tt.preset).Evaluate(readTestdata(t, tt.file), tt.exit)
			if r.OK != tt.wantOK || !strings.HasPrefix(r.Error, tt.wantErrorPrefix) {
				t.Errorf("Evaluate = OK %v, Error %q; want OK %v, Error starting %q", r.OK, r.Error, tt.wantOK, tt.wantErrorPrefix)
			}
			if tt.wantOK && r.Error != "" {
				t.Errorf("a success carries Error %q", r.Error)
			}
		})
	}
}

func TestParseAny(t *testing.T) {
	t.Parallel()
	r, err := ParseAny("codex", readTestdata(t, "codex-success.jsonl"))
	if err != nil || !r.OK {
		t.Errorf("ParseAny(codex) = %+v, %v", r, err)
	}
	r, err = ParseAny("cursor", nil)
	if !errors.Is(err, ErrUnknownPreset) || r == nil || r.OK {
		t.Errorf("ParseAny(cursor) = %+v, %v; want ErrUnknownPreset", r, err)
	}
}

func TestAiderTokenCounts(t *testing.T) {
	t.Parallel()
	tests := map[string]int{"345": 345, "1.2k": 1200, "12k": 12000, "2M": 2_000_000, "x": 0, "": 0, "99999999999999k": maxCount}
	for in, want := range tests {
		if got := parseTokenCount(in); got != want {
			t.Errorf("parseTokenCount(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestTailCutsOnRuneBoundary(t *testing.T) {
	t.Parallel()
	got := tail("ééééé", 1, 5)
	if !strings.HasPrefix(got, "…") || !strings.HasSuffix(got, "éé") || strings.ContainsRune(got, '\uFFFD') {
		t.Errorf("tail = %q", got)
	}
}

func TestObjectsStaysLinearOnHostileOutput(t *testing.T) {
	t.Parallel()
	// Every line opens a structure that never closes; a naive retry per line re-reads the
	// rest of the output each time.
	hostile := strings.Repeat(`{"a":[`+"\n", 200_000)
	result := `{"type":"result","subtype":"success","is_error":false,"result":"ok"}` + "\n"
	start := time.Now()
	r, err := mustGet(t, "claude-code").Parse([]byte(result + hostile))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("parsing %d bytes took %v", len(hostile), d)
	}
	if err != nil || !r.OK || r.Final != "ok" {
		t.Errorf("Parse = %+v, %v; want the result before the hostile lines", r, err)
	}
	// A noise line that opens a structure does not hide the result after it.
	r, err = mustGet(t, "claude-code").Parse([]byte(`{"log":[` + "\n" + result))
	if err != nil || !r.OK {
		t.Errorf("result after an unclosed line: %+v, %v", r, err)
	}
}
