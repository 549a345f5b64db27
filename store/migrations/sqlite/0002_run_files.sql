-- A finished run's files (result, report, patch, each job's log), deflated, so that every
-- daemon sharing the database can serve them, not only the one that ran the run.
CREATE TABLE run_files (
    run_id   TEXT NOT NULL,
    name     TEXT NOT NULL,
    data     BLOB NOT NULL,
    saved_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
);
