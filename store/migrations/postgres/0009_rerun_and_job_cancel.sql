-- A re-run is a new run of the same delivery and commit; rerun_of names the run it re-runs.
ALTER TABLE runs ADD COLUMN rerun_of TEXT NOT NULL DEFAULT '';
-- The agent jobs of a run as its worker starts and finishes them, and the requests to cancel one
-- (cancelled_at > 0), which the worker holding the run reads, whichever daemon it is on.
CREATE TABLE run_jobs (
    run_id        TEXT NOT NULL,
    job           TEXT NOT NULL,
    state         TEXT NOT NULL,
    cancel_reason TEXT NOT NULL DEFAULT '',
    cancelled_at  BIGINT NOT NULL DEFAULT 0,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (run_id, job)
);
