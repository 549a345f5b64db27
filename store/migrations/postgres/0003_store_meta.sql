-- Facts about the database itself: "identity", a random id made once, which names this store
-- on the Docker objects its daemons create (a daemon's leases are visible only here).
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
