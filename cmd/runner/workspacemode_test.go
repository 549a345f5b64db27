package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/workspace"
)

// fakeProber answers ProbeOverlay with err and counts the questions.
type fakeProber struct {
	err   error
	calls int
}

func (f *fakeProber) ProbeOverlay(context.Context, string) error {
	f.calls++
	return f.err
}

func TestWorkspaceModeChoice(t *testing.T) {
	cannot := fmt.Errorf("%w over /data: mount: invalid argument", sandbox.ErrOverlayUnsupported)
	tests := []struct {
		name      string
		want      string
		probe     error
		mode      workspace.Mode
		note, err string // substrings; "" means none
		probes    int
	}{
		{name: "auto takes overlay where the engine mounts it", want: "auto", mode: workspace.ModeOverlay, probes: 1},
		{name: "auto falls back to checkout and says why", want: "auto", probe: cannot, mode: workspace.ModeCheckout,
			note: "full checkouts (slower on large repositories), because the Docker engine cannot mount overlay workspaces over /data: mount: invalid argument", probes: 1},
		{name: "checkout asks the engine nothing", want: "checkout", probe: cannot, mode: workspace.ModeCheckout},
		{name: "overlay forced on an engine that cannot fails and says to use checkout", want: "overlay", probe: cannot,
			err: "workspace mode overlay: the Docker engine cannot mount overlay workspaces over /data: mount: invalid argument; use workspace mode checkout", probes: 1},
		{name: "an engine failure is not a fallback", want: "auto", probe: &sandbox.InfraError{Op: "import", Err: errors.New("engine down")},
			err: "check whether the Docker engine mounts overlay workspaces: import: engine down", probes: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			p := &fakeProber{err: tc.probe}
			mode, note, err := chooseWorkspaceMode(t.Context(), p, tc.want, "/data", slog.New(slog.NewTextHandler(&log, nil)))
			if p.calls != tc.probes {
				t.Errorf("probed %d times, want %d", p.calls, tc.probes)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil || mode != tc.mode {
				t.Fatalf("mode %q, err %v; want %q", mode, err, tc.mode)
			}
			if tc.note == "" && (note != "" || log.Len() > 0) {
				t.Errorf("note %q, log %q; want silence", note, log.String())
			}
			if tc.note != "" && (!strings.Contains(note, tc.note) || strings.Count(log.String(), "full checkouts") != 1) {
				t.Errorf("note %q, log %q; want %q once in each", note, log.String(), tc.note)
			}
		})
	}
}

func TestWorkspaceModeIsChecked(t *testing.T) {
	repo := gitRepo(t, map[string]string{".agents/a.yaml": "on: push\ndefaults: {image: i}\nagents:\n  a: {command: [x]}\n"})
	chdir(t, repo)
	code, _, errOut := runCLI(t, "exec", "--workspace", "cow")
	if code != 2 || !strings.Contains(errOut, `--workspace must be auto, overlay or checkout, not "cow"`) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}
