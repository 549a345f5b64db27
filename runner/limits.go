package runner

import (
	"errors"
	"fmt"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/runner/plan"
	"github.com/agentrunner/agentrunner/workspace"
)

// Limits bound what one job may leave on the runner's disk, in bytes. A zero field means the
// DefaultLimits value; a routine's `limits:` override the change limits per agent.
type Limits struct {
	// ChangedFile is the largest one changed file of a `changes: keep` agent may be.
	ChangedFile int64
	// Patch is the largest the patch of a `changes: keep` agent may be.
	Patch int64
	// Log is the largest a job's log.txt may grow; past it the middle of the log is cut.
	Log int64
}

// DefaultLimits are the runner's limits when neither its configuration nor the routine set
// them. A changed file of 10 MiB is far beyond source code, lockfiles and fixtures, and well
// below the build outputs and data sets an agent should not commit; a patch of 50 MiB is beyond
// what anyone reviews, and is where GitHub starts warning about a pushed file. A log of 10 MiB
// holds hours of an agent's chatter; its head and tail are what a reader looks at.
var DefaultLimits = Limits{ChangedFile: 10 << 20, Patch: 50 << 20, Log: 10 << 20}

// withDefaults fills l's zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	if l.ChangedFile <= 0 {
		l.ChangedFile = DefaultLimits.ChangedFile
	}
	if l.Patch <= 0 {
		l.Patch = DefaultLimits.Patch
	}
	if l.Log <= 0 {
		l.Log = DefaultLimits.Log
	}
	return l
}

// forInstance is l with the instance's own change limits, where its routine set them.
func (l Limits) forInstance(inst *plan.Instance) Limits {
	l = l.withDefaults()
	if inst.Limits.ChangedFile > 0 {
		l.ChangedFile = inst.Limits.ChangedFile
	}
	if inst.Limits.Patch > 0 {
		l.Patch = inst.Limits.Patch
	}
	return l
}

// ErrChangesTooLarge is the cause of a job whose changes exceed its limits: it fails and keeps
// no patch.
var ErrChangesTooLarge = errors.New("changes too large")

// changesTooLarge explains a workspace.TooLargeError in the routine's terms.
func changesTooLarge(e *workspace.TooLargeError) error {
	if e.Path != "" {
		return fmt.Errorf("%w: %s is %s, over the limit of %s on one changed file; no changes were kept "+
			"(raise limits.changed-file of the agent, or keep such files out of the workspace or in .gitignore)",
			ErrChangesTooLarge, e.Path, config.FormatSize(e.Size), config.FormatSize(e.Limit))
	}
	return fmt.Errorf("%w: the patch passed the limit of %s; no changes were kept "+
		"(raise limits.patch of the agent, or have it change less)", ErrChangesTooLarge, config.FormatSize(e.Limit))
}
