package store

import (
	"errors"
	"fmt"
	"slices"
)

// ErrIllegalTransition: a write would move a run or a job to a state it may not reach from
// the state it is in (a completed run marked running again, a finished job leased again).
var ErrIllegalTransition = errors.New("illegal state transition")

// The state machines of runs and jobs, in one place: every store function that changes a
// state checks its move here (and the SQL of the job functions selects the states listed
// here), so no writer can leave a run or a job in a state nothing else expects.
//
// A run: queued → (waiting ⇄) running → completed. A run job given back to the queue (the
// daemon drains, or the run waits for its concurrency group) sends a running run back to
// queued with it, in the same transaction, so a run is never running while its job is not
// held. Completed is final: its conclusion (success, failure, cancelled, …) never changes.
// Rerun starts a completed run over as queued.
var runMoves = map[string][]string{
	RunQueued:    {RunQueued, RunWaiting, RunRunning, RunCompleted},
	RunWaiting:   {RunWaiting, RunQueued, RunRunning, RunCompleted},
	RunRunning:   {RunRunning, RunQueued, RunWaiting, RunCompleted},
	RunCompleted: {RunQueued}, // by Rerun only
}

// A job: available → leased → completed, dead, or available again (a retry, a requeue that
// gives its attempt back, an expired lease rescued); available or leased → cancelled (a user
// cancelled its run). Completed, dead and cancelled are final, except that Rerun makes the jobs
// of a completed run available again.
var jobMoves = map[string][]string{
	JobAvailable: {JobLeased, JobCancelled},
	JobLeased:    {JobLeased, JobAvailable, JobCompleted, JobDead, JobCancelled},
	JobCompleted: {JobAvailable}, // by Rerun only
	JobDead:      {JobAvailable}, // by Rerun only
	JobCancelled: {JobAvailable}, // by Rerun only
}

// CheckRunMove returns nil when a run may move from status from to status to, and an error
// wrapping ErrIllegalTransition otherwise.
func CheckRunMove(from, to string) error {
	return checkMove(runMoves, "run", from, to)
}

// CheckJobMove is CheckRunMove for jobs.
func CheckJobMove(from, to string) error {
	return checkMove(jobMoves, "job", from, to)
}

func checkMove(moves map[string][]string, what, from, to string) error {
	next, known := moves[from]
	if !known {
		return fmt.Errorf("%s in unknown state %q: %w", what, from, ErrIllegalTransition)
	}
	if _, known := moves[to]; !known {
		return fmt.Errorf("%s to unknown state %q: %w", what, to, ErrIllegalTransition)
	}
	if !slices.Contains(next, to) {
		return fmt.Errorf("%s from %s to %s: %w", what, from, to, ErrIllegalTransition)
	}
	return nil
}

// jobStatesTo lists the job states that may move to state to, for the SQL that selects them.
func jobStatesTo(to string) []string {
	var out []string
	for from, next := range jobMoves {
		if slices.Contains(next, to) {
			out = append(out, from)
		}
	}
	slices.Sort(out)
	return out
}
