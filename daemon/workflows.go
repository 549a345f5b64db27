package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/agentrunner/agentrunner/runner"
	"github.com/agentrunner/agentrunner/store"
)

// WorkflowFiles is what StoreWorkflows needs of the store.
type WorkflowFiles interface {
	SaveRunFile(ctx context.Context, runID, name string, data []byte) error
	RunFile(ctx context.Context, runID, name string) ([]byte, error)
}

// StoreWorkflows keeps the workflows orchestrators write as files of their run in the store,
// where whichever daemon of the fleet takes the run up again after a crash finds them.
type StoreWorkflows struct{ Files WorkflowFiles }

// workflowFile names an orchestrator's workflow among its run's files.
func workflowFile(agent string) string { return "workflows/" + runner.JobDirName(agent) + ".yaml" }

// SaveWorkflow implements runner.WorkflowStore.
func (w StoreWorkflows) SaveWorkflow(ctx context.Context, runID, agent string, data []byte) error {
	return w.Files.SaveRunFile(ctx, runID, workflowFile(agent), data)
}

// Workflow implements runner.WorkflowStore.
func (w StoreWorkflows) Workflow(ctx context.Context, runID, agent string) ([]byte, error) {
	b, err := w.Files.RunFile(ctx, runID, workflowFile(agent))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no workflow of %s kept with run %s: %w", agent, runID, fs.ErrNotExist)
	}
	return b, err
}
