package workspace

import (
	"context"
	"fmt"
)

// Snapshot records the working tree of repoDir as it is now (as Source.IncludeUncommitted
// does) and returns the commit: HEAD itself when the tree is clean. Taking it once per run lets
// every job start from, and every patch apply to, the same base.
func (m *Manager) Snapshot(ctx context.Context, repoDir string) (string, error) {
	head, err := m.git.resolveCommit(ctx, repoDir, "HEAD")
	if err != nil {
		return "", fmt.Errorf("snapshot %s: no HEAD commit: %w", repoDir, err)
	}
	return snapshot(ctx, m.git, repoDir, head)
}
