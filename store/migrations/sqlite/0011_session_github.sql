-- A session signed in with GitHub names the GitHub login it belongs to; what it may see and
-- do is then decided per repository from that person's role on GitHub, not from its scope
-- alone. Empty for sessions made from an API token.
ALTER TABLE sessions ADD COLUMN github_login TEXT NOT NULL DEFAULT '';
