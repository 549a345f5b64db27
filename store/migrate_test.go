package store_test

import (
	"testing"

	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// A token made before scopes existed could do everything: after the upgrade it still
// authenticates, as admin, with no expiry.
func TestUpgradeKeepsOldTokensAsAdmin(t *testing.T) {
	for name, newDB := range map[string]storetest.NewDB{"sqlite": storetest.SQLite, "postgres": storetest.Postgres} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			db := newDB(t)
			old, err := store.OpenAtVersion(ctx, db.DSN, 3)
			if err != nil {
				t.Fatal(err)
			}
			const plain = "art_made-by-a-runner-at-schema-0003"
			if _, err := old.ExecContext(ctx, `INSERT INTO tokens (name, hash, created_at) VALUES ('legacy', $1, 1700000000000000)`,
				store.HashToken(plain)); err != nil {
				old.Close()
				t.Fatal(err)
			}
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			s := db.Open(t)
			tok, err := s.CheckToken(ctx, plain)
			if err != nil || tok.Name != "legacy" || tok.Scope != store.ScopeAdmin || !tok.ExpiresAt.IsZero() {
				t.Fatalf("the old token after the upgrade: %+v, %v; want legacy, admin, no expiry", tok, err)
			}
			if !tok.Scope.Allows(store.ScopeDispatch) || !tok.Scope.Allows(store.ScopeRead) {
				t.Fatal("admin does not include dispatch and read")
			}
		})
	}
}

func TestScopesNest(t *testing.T) {
	for _, tc := range []struct {
		have, need store.Scope
		ok         bool
	}{
		{store.ScopeRead, store.ScopeRead, true},
		{store.ScopeRead, store.ScopeDispatch, false},
		{store.ScopeDispatch, store.ScopeRead, true},
		{store.ScopeDispatch, store.ScopeAdmin, false},
		{store.ScopeAdmin, store.ScopeDispatch, true},
		{"", store.ScopeRead, false},
		{"superuser", store.ScopeRead, false},
		{store.ScopeAdmin, "", false},
	} {
		if got := tc.have.Allows(tc.need); got != tc.ok {
			t.Errorf("%q.Allows(%q) = %v, want %v", tc.have, tc.need, got, tc.ok)
		}
	}
	if _, err := store.ParseScope("write"); err == nil {
		t.Error(`ParseScope("write") succeeded`)
	}
}
