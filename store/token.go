package store

import (
	"errors"
	"fmt"
	"time"
)

// Scope is what an API token may do. Each scope includes the ones before it:
// read ⊂ dispatch ⊂ admin.
type Scope string

// The scopes, least to most.
const (
	// ScopeRead reads runs, jobs and logs.
	ScopeRead Scope = "read"
	// ScopeDispatch also starts, cancels and reruns runs.
	ScopeDispatch Scope = "dispatch"
	// ScopeAdmin also manages the daemon itself (tokens, when the API offers that). Tokens made
	// before scopes existed are admin: they could do everything.
	ScopeAdmin Scope = "admin"
)

// Scopes lists the valid scopes, least to most.
var Scopes = []Scope{ScopeRead, ScopeDispatch, ScopeAdmin}

// rank orders the scopes; 0 is not a scope.
func (s Scope) rank() int {
	for i, v := range Scopes {
		if s == v {
			return i + 1
		}
	}
	return 0
}

// Allows says whether a token with scope s may do what needs scope need. An unknown scope,
// on either side, allows nothing.
func (s Scope) Allows(need Scope) bool {
	return s.rank() > 0 && need.rank() > 0 && s.rank() >= need.rank()
}

// ParseScope reads a scope's name.
func ParseScope(v string) (Scope, error) {
	if s := Scope(v); s.rank() > 0 {
		return s, nil
	}
	return "", fmt.Errorf("unknown token scope %q (want read, dispatch or admin)", v)
}

// ErrTokenExpired is CheckToken's error for a token whose expiry has passed; the Token it
// returns with it says which token and when.
var ErrTokenExpired = errors.New("token expired")

// LastUsedEvery bounds how often CheckToken records a token's use: at most one write per
// token a minute, however many requests it authenticates.
const LastUsedEvery = time.Minute

// Token is an API token's record; its plaintext is never stored, only its SHA-256.
type Token struct {
	Name  string
	Scope Scope
	// ExpiresAt is when it stops working; zero: never.
	ExpiresAt time.Time
	// Filled by the store.
	CreatedAt  time.Time
	LastUsedAt time.Time // zero: never used (up to LastUsedEvery late)
}

// Expired says whether the token has expired at now.
func (t Token) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}
