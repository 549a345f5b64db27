-- Model spend metered by the egress proxies, per UTC day, repository and routine: the daily
-- budgets of every daemon sharing the database count against the same rows.
CREATE TABLE model_spend (
    day     TEXT NOT NULL,
    repo    TEXT NOT NULL,
    routine TEXT NOT NULL,
    usd     DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (day, repo, routine)
);
