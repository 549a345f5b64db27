package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// sessionPrefix tells a session id from an API token in logs and secret scanners.
const sessionPrefix = "ars_"

// Session is a signed-in browser of the web UI. Its id is given once, by CreateSession; only
// its SHA-256 is stored.
type Session struct {
	// Who signed in: a token's name, or a GitHub login. Shown in the UI.
	Who   string
	Scope Scope
	// GitHubLogin is the GitHub account of a session signed in with GitHub ("" for token
	// sessions): the UI then shows and steers only the repositories that account may.
	GitHubLogin string
	// TokenName is the API token the session was made from ("" for other sign-ins): when that
	// token is revoked or expires, the session ends with it.
	TokenName string
	// ExpiresAt is when the session ends at the latest (required).
	ExpiresAt time.Time
	// Filled by the store.
	CreatedAt time.Time
}

func (s *sqlStore) CreateSession(ctx context.Context, se Session) (string, error) {
	if se.Who == "" {
		return "", errors.New("create session: who signed in is empty")
	}
	if _, err := ParseScope(string(se.Scope)); err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	now := s.now()
	if !se.ExpiresAt.After(now) {
		return "", errors.New("create session: its expiry is not in the future")
	}
	var tokCreated int64
	if se.TokenName != "" {
		// The token's creation time tells this token from a later one of the same name.
		err := s.r.QueryRowContext(ctx, `SELECT created_at FROM tokens WHERE name = $1`, se.TokenName).Scan(&tokCreated)
		if errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("create session: token %q: %w", se.TokenName, ErrNotFound)
		}
		if err != nil {
			return "", fmt.Errorf("create session: %w", err)
		}
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	plain := sessionPrefix + base64.RawURLEncoding.EncodeToString(b)
	if _, err := s.w.ExecContext(ctx, `INSERT INTO sessions (hash, who, scope, token_name, token_created_at, created_at, expires_at, github_login)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, hashToken(plain), se.Who, string(se.Scope), se.TokenName, tokCreated,
		micros(now), micros(se.ExpiresAt), se.GitHubLogin); err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	return plain, nil
}

// CheckSession returns the session with id plaintext: ErrNotFound when there is none, it has
// expired, or the token it was made from was revoked, replaced or has expired.
func (s *sqlStore) CheckSession(ctx context.Context, plaintext string) (Session, error) {
	if !strings.HasPrefix(plaintext, sessionPrefix) {
		return Session{}, fmt.Errorf("check session: %w", ErrNotFound)
	}
	var se Session
	var scope string
	var created, expires, tokExpires int64
	var tokFound bool
	err := s.r.QueryRowContext(ctx, `SELECT s.who, s.scope, s.token_name, s.github_login, s.created_at, s.expires_at,
			COALESCE(t.expires_at, 0), t.name IS NOT NULL
		FROM sessions s LEFT JOIN tokens t ON s.token_name <> '' AND t.name = s.token_name AND t.created_at = s.token_created_at
		WHERE s.hash = $1`, hashToken(plaintext)).Scan(&se.Who, &scope, &se.TokenName, &se.GitHubLogin, &created, &expires, &tokExpires, &tokFound)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, fmt.Errorf("check session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, fmt.Errorf("check session: %w", err)
	}
	se.Scope, se.CreatedAt, se.ExpiresAt = Scope(scope), fromMicros(created), fromMicros(expires)
	now := s.now()
	if !now.Before(se.ExpiresAt) {
		return Session{}, fmt.Errorf("check session: expired: %w", ErrNotFound)
	}
	if se.TokenName != "" {
		if !tokFound {
			return Session{}, fmt.Errorf("check session: its token %q was revoked: %w", se.TokenName, ErrNotFound)
		}
		if tokExpires != 0 && !now.Before(fromMicros(tokExpires)) {
			return Session{}, fmt.Errorf("check session: its token %q expired: %w", se.TokenName, ErrNotFound)
		}
	}
	return se, nil
}

// DeleteSession ends a session (sign-out); ending one that does not exist is no error. It
// also removes sessions that expired more than a day ago, so the table does not grow.
func (s *sqlStore) DeleteSession(ctx context.Context, plaintext string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM sessions WHERE hash = $1 OR expires_at < $2`,
		hashToken(plaintext), micros(s.now().Add(-24*time.Hour))); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
