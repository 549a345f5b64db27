package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Run job states: an agent job of a run as the worker running the run reports it.
const (
	RunJobPending  = "pending"  // not started (a cancel request was recorded before it started)
	RunJobRunning  = "running"  // its container runs
	RunJobFinished = "finished" // it ended, however (its outcome is in the run's result)
)

// RunJob is one agent job of a run (an instance id like "review" or "review[a]#2"), and
// whether someone asked to cancel it.
type RunJob struct {
	RunID string
	Job   string
	State string // RunJobPending, RunJobRunning or RunJobFinished
	// CancelledAt is when a cancel was asked for (zero: never), with CancelReason.
	CancelledAt  time.Time
	CancelReason string
	UpdatedAt    time.Time
}

// Cancelled reports whether a cancel of the job was asked for.
func (j RunJob) Cancelled() bool { return !j.CancelledAt.IsZero() }

func (s *sqlStore) SetRunJobState(ctx context.Context, runID, job, state string) error {
	if runID == "" || job == "" {
		return fmt.Errorf("record job state: empty run id or job")
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO run_jobs (run_id, job, state, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (run_id, job) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
		runID, job, state, micros(s.now()))
	if err != nil {
		return fmt.Errorf("record job %s of run %s %s: %w", job, runID, state, err)
	}
	return nil
}

func (s *sqlStore) CancelRunJob(ctx context.Context, runID, job, reason string) (RunJob, error) {
	if runID == "" || job == "" {
		return RunJob{}, fmt.Errorf("cancel job: empty run id or job")
	}
	now := micros(s.now())
	// A finished job, or one already asked to cancel, keeps what it has: the caller reads it
	// back and tells which.
	if _, err := s.w.ExecContext(ctx, `INSERT INTO run_jobs (run_id, job, state, cancel_reason, cancelled_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $5)
		ON CONFLICT (run_id, job) DO UPDATE SET cancel_reason = excluded.cancel_reason, cancelled_at = excluded.cancelled_at,
		updated_at = excluded.updated_at
		WHERE run_jobs.state <> $6 AND run_jobs.cancelled_at = 0`,
		runID, job, RunJobPending, reason, now, RunJobFinished); err != nil {
		return RunJob{}, fmt.Errorf("cancel job %s of run %s: %w", job, runID, err)
	}
	j, err := scanRunJob(s.w.QueryRowContext(ctx, `SELECT `+runJobCols+` FROM run_jobs WHERE run_id = $1 AND job = $2`, runID, job))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		return RunJob{}, fmt.Errorf("cancel job %s of run %s: read it back: %w", job, runID, err)
	}
	return j, nil
}

func (s *sqlStore) RunJobs(ctx context.Context, runID string) ([]RunJob, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+runJobCols+` FROM run_jobs WHERE run_id = $1 ORDER BY job`, runID)
	if err != nil {
		return nil, fmt.Errorf("list jobs of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []RunJob
	for rows.Next() {
		j, err := scanRunJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs of run %s: %w", runID, err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

const runJobCols = `run_id, job, state, cancel_reason, cancelled_at, updated_at`

func scanRunJob(sc scanner) (RunJob, error) {
	var j RunJob
	var c, u int64
	if err := sc.Scan(&j.RunID, &j.Job, &j.State, &j.CancelReason, &c, &u); err != nil {
		return RunJob{}, err
	}
	if c > 0 {
		j.CancelledAt = fromMicros(c)
	}
	j.UpdatedAt = fromMicros(u)
	return j, nil
}
