package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/store"
)

func testSessions(t *testing.T, db DB) {
	clock := NewClock()
	s := db.Open(t, store.WithClock(clock.Now))
	ctx := ctxT(t)
	must(s.CreateToken(ctx, store.Token{Name: "web", Scope: store.ScopeRead, ExpiresAt: clock.Now().Add(2 * time.Hour)}))
	id := must(s.CreateSession(ctx, store.Session{Who: "web", Scope: store.ScopeRead, TokenName: "web", ExpiresAt: clock.Now().Add(time.Hour)}))
	se, err := s.CheckSession(ctx, id)
	if err != nil || se.Who != "web" || se.Scope != store.ScopeRead || se.TokenName != "web" {
		t.Fatalf("CheckSession = %+v, %v; want web's read session", se, err)
	}
	for _, bad := range []string{"", id[:len(id)-1] + "x", "art_" + id[4:]} {
		if _, err := s.CheckSession(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("CheckSession(%q) = %v, want ErrNotFound", bad, err)
		}
	}
	if _, err := s.CreateSession(ctx, store.Session{Who: "x", Scope: store.ScopeRead, TokenName: "nosuch", ExpiresAt: clock.Now().Add(time.Hour)}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a session from an unknown token: %v, want ErrNotFound", err)
	}
	if _, err := s.CreateSession(ctx, store.Session{Who: "x", Scope: "root", ExpiresAt: clock.Now().Add(time.Hour)}); err == nil {
		t.Error("a session with an unknown scope was made")
	}

	// The session expires.
	clock.Advance(time.Hour)
	if _, err := s.CheckSession(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an expired session: %v, want ErrNotFound", err)
	}

	// The token expires before the session does.
	id = must(s.CreateSession(ctx, store.Session{Who: "web", Scope: store.ScopeRead, TokenName: "web", ExpiresAt: clock.Now().Add(5 * time.Hour)}))
	clock.Advance(time.Hour)
	if _, err := s.CheckSession(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a session whose token expired: %v, want ErrNotFound", err)
	}

	// Revoking the token ends its sessions, and a new token of the same name does not revive them.
	must(s.CreateToken(ctx, store.Token{Name: "ops", Scope: store.ScopeAdmin}))
	id = must(s.CreateSession(ctx, store.Session{Who: "ops", Scope: store.ScopeAdmin, TokenName: "ops", ExpiresAt: clock.Now().Add(time.Hour)}))
	if _, err := s.CheckSession(ctx, id); err != nil {
		t.Fatal(err)
	}
	check(t, s.RevokeToken(ctx, "ops"))
	clock.Advance(time.Second) // a different creation time for the new token
	must(s.CreateToken(ctx, store.Token{Name: "ops", Scope: store.ScopeAdmin}))
	if _, err := s.CheckSession(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a session whose token was revoked: %v, want ErrNotFound", err)
	}

	// Sign-out.
	id = must(s.CreateSession(ctx, store.Session{Who: "ops", Scope: store.ScopeAdmin, TokenName: "ops", ExpiresAt: clock.Now().Add(time.Hour)}))
	check(t, s.DeleteSession(ctx, id))
	if _, err := s.CheckSession(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a deleted session: %v, want ErrNotFound", err)
	}
	check(t, s.DeleteSession(ctx, id))
}
