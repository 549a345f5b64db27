-- Browser sessions of the web UI. Only the SHA-256 of a session id is stored. A session made
-- from an API token names the token and its creation time: revoking the token (or a new token
-- under the same name) ends the session, and so does the token's expiry. Times are Unix
-- microseconds; who says who signed in (a token name now; a GitHub login later).
CREATE TABLE sessions (
    hash             TEXT PRIMARY KEY,
    who              TEXT NOT NULL,
    scope            TEXT NOT NULL,
    token_name       TEXT NOT NULL DEFAULT '',
    token_created_at INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
);
CREATE INDEX sessions_token ON sessions (token_name);
