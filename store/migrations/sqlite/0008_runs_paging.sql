-- The runs list pages by (created_at, id), newest first (RunFilter.Before): one index serves
-- both the order and the cursor, and replaces the index on created_at alone. The morning review
-- selects the runs finished since a time (RunFilter.FinishedAfter).
DROP INDEX runs_created;
CREATE INDEX runs_created_id ON runs (created_at, id);
CREATE INDEX runs_finished ON runs (finished_at);
