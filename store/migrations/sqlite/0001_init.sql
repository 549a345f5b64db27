-- Times are Unix microseconds (0 = unset), the same in both dialects so the SQL is shared.
CREATE TABLE deliveries (
    id          TEXT PRIMARY KEY,
    event       TEXT NOT NULL,
    body        BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    status      TEXT NOT NULL,
    error       TEXT NOT NULL DEFAULT '',
    generation  INTEGER NOT NULL DEFAULT 1,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE runs (
    id                TEXT PRIMARY KEY,
    key               TEXT NOT NULL UNIQUE,
    repo              TEXT NOT NULL,
    routine           TEXT NOT NULL,
    sha               TEXT NOT NULL,
    event_kind        TEXT NOT NULL,
    delivery_id       TEXT NOT NULL,
    concurrency_group TEXT NOT NULL,
    plan              BLOB NOT NULL,
    status            TEXT NOT NULL,
    conclusion        TEXT NOT NULL DEFAULT '',
    error             TEXT NOT NULL DEFAULT '',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    started_at        INTEGER NOT NULL DEFAULT 0,
    finished_at       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_repo_created ON runs (repo, created_at);
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    key           TEXT NOT NULL UNIQUE,
    payload       BLOB NOT NULL,
    run_id        TEXT NOT NULL DEFAULT '',
    delivery_id   TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL,
    run_after     INTEGER NOT NULL,
    lease_owner   TEXT NOT NULL DEFAULT '',
    lease_expires INTEGER NOT NULL DEFAULT 0,
    result        BLOB NOT NULL,
    last_error    TEXT NOT NULL DEFAULT '',
    log_path      TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    finished_at   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_available ON jobs (state, run_after, id);
CREATE INDEX jobs_leased ON jobs (state, lease_expires);
CREATE INDEX jobs_run ON jobs (run_id);

CREATE TABLE concurrency_groups (
    name        TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    acquired_at INTEGER NOT NULL
);

CREATE TABLE schedule_ticks (
    routine    TEXT NOT NULL,
    tick       INTEGER NOT NULL,
    claimed_at INTEGER NOT NULL,
    PRIMARY KEY (routine, tick)
);

CREATE TABLE tokens (
    name       TEXT PRIMARY KEY,
    hash       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
