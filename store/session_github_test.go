package store_test

import (
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/store"
	"github.com/agentrunner/agentrunner/store/storetest"
)

// A session keeps the GitHub login it was signed in with; sessions made before the column
// existed (schema 0008) live on as token sessions.
func TestSessionsKeepTheirGitHubLogin(t *testing.T) {
	for name, newDB := range map[string]storetest.NewDB{"sqlite": storetest.SQLite, "postgres": storetest.Postgres} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			db := newDB(t)
			old, err := store.OpenAtVersion(ctx, db.DSN, 8)
			if err != nil {
				t.Fatal(err)
			}
			const plain = "ars_made-at-schema-0008"
			exp := time.Now().Add(time.Hour).UnixMicro()
			if _, err := old.ExecContext(ctx, `INSERT INTO sessions (hash, who, scope, created_at, expires_at) VALUES ($1, 'someone', 'read', 1, $2)`,
				store.HashToken(plain), exp); err != nil {
				old.Close()
				t.Fatal(err)
			}
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			s := db.Open(t)
			if se, err := s.CheckSession(ctx, plain); err != nil || se.Who != "someone" || se.GitHubLogin != "" {
				t.Fatalf("the old session after the upgrade: %+v, %v", se, err)
			}
			id, err := s.CreateSession(ctx, store.Session{Who: "octocat", Scope: store.ScopeDispatch, GitHubLogin: "octocat",
				ExpiresAt: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			if se, err := s.CheckSession(ctx, id); err != nil || se.GitHubLogin != "octocat" || se.TokenName != "" {
				t.Fatalf("GitHub session = %+v, %v", se, err)
			}
		})
	}
}
