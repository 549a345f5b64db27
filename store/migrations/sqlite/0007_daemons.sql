-- Each daemon's internal address, recorded at start under its lease owner name, so a daemon of
-- a fleet can fetch a running job's live log from the daemon that holds the run's lease.
CREATE TABLE daemons (
    owner        TEXT PRIMARY KEY,
    internal_url TEXT NOT NULL,
    updated_at   BIGINT NOT NULL
);
