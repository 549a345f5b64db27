package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// tokenPrefix makes a leaked token recognizable to secret scanners.
const tokenPrefix = "art_"

func hashToken(plaintext string) string {
	sum := sha256.Sum256([]byte(plaintext))
	return hex.EncodeToString(sum[:])
}

func (s *sqlStore) CreateToken(ctx context.Context, t Token) (string, error) {
	if t.Name == "" || strings.IndexFunc(t.Name, unicode.IsControl) >= 0 {
		return "", fmt.Errorf("create token %q: the name must be non-empty and printable", t.Name)
	}
	if _, err := ParseScope(string(t.Scope)); err != nil {
		return "", fmt.Errorf("create token %q: %w", t.Name, err)
	}
	now := s.now()
	if !t.ExpiresAt.IsZero() && !t.ExpiresAt.After(now) {
		return "", fmt.Errorf("create token %q: its expiry %s is not in the future", t.Name, t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	plain := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	var got string
	err := s.w.QueryRowContext(ctx, `INSERT INTO tokens (name, hash, created_at, scope, expires_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT DO NOTHING RETURNING name`, t.Name, hashToken(plain), micros(now), string(t.Scope), micros(t.ExpiresAt)).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("create token %q: %w (revoke it first)", t.Name, ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("create token %q: %w", t.Name, err)
	}
	return plain, nil
}

const qTokenColumns = `name, scope, created_at, expires_at, last_used_at`

// scanToken reads qTokenColumns. An unknown scope (a row from a newer runner, or one whose
// scope was lost) stays as it is: Scope.Allows refuses it everything.
func scanToken(row interface{ Scan(...any) error }) (Token, error) {
	var t Token
	var scope string
	var created, expires, used int64
	if err := row.Scan(&t.Name, &scope, &created, &expires, &used); err != nil {
		return Token{}, err
	}
	t.Scope = Scope(scope)
	t.CreatedAt, t.ExpiresAt, t.LastUsedAt = fromMicros(created), fromMicros(expires), fromMicros(used)
	return t, nil
}

func (s *sqlStore) CheckToken(ctx context.Context, plaintext string) (Token, error) {
	if !strings.HasPrefix(plaintext, tokenPrefix) {
		return Token{}, fmt.Errorf("check token: %w", ErrNotFound)
	}
	h := hashToken(plaintext)
	t, err := scanToken(s.r.QueryRowContext(ctx, `SELECT `+qTokenColumns+` FROM tokens WHERE hash = $1`, h))
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, fmt.Errorf("check token: %w", ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("check token: %w", err)
	}
	now := s.now()
	if t.Expired(now) {
		return t, fmt.Errorf("token %q expired at %s: %w", t.Name, t.ExpiresAt.Format(time.RFC3339), ErrTokenExpired)
	}
	if now.Sub(t.LastUsedAt) < LastUsedEvery {
		return t, nil
	}
	// A write at most once a minute per token, not per request; the condition keeps daemons
	// sharing the database from each writing it within the same minute.
	if _, err := s.w.ExecContext(ctx, `UPDATE tokens SET last_used_at = $1 WHERE hash = $2 AND last_used_at <= $3`,
		micros(now), h, micros(now.Add(-LastUsedEvery))); err != nil {
		return Token{}, fmt.Errorf("check token %q: record its use: %w", t.Name, err)
	}
	t.LastUsedAt = now.UTC()
	return t, nil
}

func (s *sqlStore) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+qTokenColumns+` FROM tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

func (s *sqlStore) RevokeToken(ctx context.Context, name string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM tokens WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("revoke token %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("revoke token %q: %w", name, ErrNotFound)
	}
	return nil
}
