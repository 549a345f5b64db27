-- Token scopes (read ⊂ dispatch ⊂ admin), expiry and last use (times in Unix microseconds,
-- 0 = never). Tokens made before scopes existed could do everything, so they become admin;
-- a row that somehow lacks a scope ('') is refused by the store, never given access.
ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN last_used_at BIGINT NOT NULL DEFAULT 0;
UPDATE tokens SET scope = 'admin';
