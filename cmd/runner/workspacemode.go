package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/agentrunner/agentrunner/sandbox"
	"github.com/agentrunner/agentrunner/workspace"
)

// Workspace modes a person picks (`runner exec --workspace`, runner.yaml `workspace.mode`):
// auto is an overlay of a shared checkout where the engine can mount one, a full checkout
// elsewhere.
const (
	workspaceAuto     = "auto"
	workspaceOverlay  = string(workspace.ModeOverlay)
	workspaceCheckout = string(workspace.ModeCheckout)
)

// checkWorkspaceMode refuses a mode that is not one of the three.
func checkWorkspaceMode(source, mode string) error {
	switch mode {
	case workspaceAuto, workspaceOverlay, workspaceCheckout:
		return nil
	}
	return usageError{fmt.Errorf("%s must be auto, overlay or checkout, not %q", source, mode)}
}

// overlayProber is what chooseWorkspaceMode needs of the sandbox.
type overlayProber interface {
	ProbeOverlay(ctx context.Context, dir string) error
}

// chooseWorkspaceMode decides how workspaces under dir are made. For auto it asks the engine
// (once per process) whether it mounts overlay volumes there; where it does not, it says so in
// the log once and returns the same sentence as note, for a summary. Overlay forced on an
// engine that cannot fails with the reason and the way out.
func chooseWorkspaceMode(ctx context.Context, p overlayProber, want, dir string, logger *slog.Logger) (mode workspace.Mode, note string, err error) {
	if want == workspaceCheckout {
		return workspace.ModeCheckout, "", nil
	}
	perr := p.ProbeOverlay(ctx, dir)
	switch {
	case perr == nil:
		return workspace.ModeOverlay, "", nil
	case ctx.Err() != nil:
		return "", "", ctx.Err()
	case !errors.Is(perr, sandbox.ErrOverlayUnsupported):
		return "", "", fmt.Errorf("check whether the Docker engine mounts overlay workspaces: %w", perr)
	case want == workspaceOverlay:
		return "", "", fmt.Errorf("workspace mode overlay: %w; use workspace mode checkout (--workspace checkout, or workspace: {mode: checkout} in runner.yaml) or auto", perr)
	}
	note = fmt.Sprintf("workspaces are full checkouts (slower on large repositories), because %s", sandbox.CleanDockerError(perr))
	logger.Warn(note)
	return workspace.ModeCheckout, note, nil
}
