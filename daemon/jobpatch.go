package daemon

import (
	"path/filepath"

	"github.com/agentrunner/agentrunner/internal/safefile"
	"github.com/agentrunner/agentrunner/runner/result"
)

// MaxSavedJobPatch bounds one job's patch as Files keeps it. A patch is useful whole or not at
// all, so a larger one is not kept (the run directory still has it); the runner's own patch
// limit is normally far below.
const MaxSavedJobPatch = 16 << 20

// JobPatchFile is the run file of a job's own patch, beside its log: the web UI's job page
// shows it when the run directory of the daemon that ran the job is not at hand.
const JobPatchFile = "patch.diff"

// addJobPatches adds each job's patch (its changes.patch in the run directory) to files as
// jobs/<job dir>/patch.diff. Like the logs, a patch is read beneath runDir without following
// links: the agents write next to it.
func (p *GitPipeline) addJobPatches(runID, runDir string, res *result.Run, files map[string][]byte) {
	for _, j := range res.Jobs {
		if j.Changes == nil || j.Changes.PatchFile == "" {
			continue
		}
		rel, err := filepath.Rel(runDir, j.Changes.PatchFile)
		if err != nil || !filepath.IsLocal(rel) {
			continue
		}
		data, err := safefile.Read(runDir, filepath.ToSlash(rel), MaxSavedJobPatch)
		if err != nil {
			p.log().Warn("read a job's patch to keep it", "run_id", runID, "job", j.ID, "err", err)
			continue
		}
		files[filepath.ToSlash(filepath.Join(filepath.Dir(rel), JobPatchFile))] = data
	}
}
