package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/store"

	"github.com/agentrunner/agentrunner/store/storetest"
)

func TestSQLite(t *testing.T) { storetest.Run(t, storetest.SQLite) }

func TestPostgres(t *testing.T) { storetest.Run(t, storetest.Postgres) }

func TestOpenRejectsBadLocations(t *testing.T) {
	tests := []struct {
		name, dsn, want string
	}{
		{"empty", "", "empty database location"},
		{"unknown scheme", "mysql://x/y", "unknown scheme"},
		{"query in a sqlite path", "sqlite:///tmp/x.db?mode=ro", "may not contain"},
		{"unreachable postgres", "postgres://nobody:secret@127.0.0.1:1/db?sslmode=disable&connect_timeout=2", "connect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(t.Context(), tc.dsn)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tc.dsn)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%q) = %v, want it to mention %q", tc.dsn, err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func TestSQLitePathForms(t *testing.T) {
	dir := t.TempDir()
	for _, dsn := range []string{
		filepath.Join(dir, "plain", "runner.db"),
		"sqlite://" + filepath.Join(dir, "url", "runner.db"),
	} {
		s, err := store.Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("Open(%q): %v", dsn, err)
		}
		if _, err := s.RecordDelivery(t.Context(), store.Delivery{ID: "x", Event: "ping"}); err != nil {
			t.Fatalf("record on %q: %v", dsn, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordDelivery(t.Context(), store.Delivery{ID: "y", Event: "ping"}); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("record after Close: %v, want ErrClosed", err)
		}
	}
	for _, p := range []string{"plain", "url"} {
		if _, err := os.Stat(filepath.Join(dir, p, "runner.db")); err != nil {
			t.Errorf("database file for the %s form: %v", p, err)
		}
	}
}
