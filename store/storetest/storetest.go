// Package storetest is the contract test suite every store.Store implementation passes, and the
// helpers that give a test a fresh SQLite or Postgres database. Other packages' tests use
// SQLite/Postgres to get a real store.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/agentrunner/agentrunner/store"
)

// PostgresEnv names the variable holding the URL of a Postgres server the tests may create
// schemas in. .ci/run starts one and sets it.
const PostgresEnv = "AGENTRUNNER_TEST_POSTGRES"

// DB is one test's fresh database.
type DB struct {
	// DSN is what store.Open takes.
	DSN string
}

// Open opens a new Store on the database, as another daemon would; the store is closed when the
// test ends.
func (d DB) Open(t testing.TB, opts ...store.Option) store.Store {
	t.Helper()
	return open(t, d.DSN, opts)
}

// NewDB makes a fresh, empty database for one test.
type NewDB func(t testing.TB) DB

// SQLite makes a fresh SQLite database file in a temporary directory.
func SQLite(t testing.TB) DB {
	return DB{DSN: "sqlite://" + filepath.Join(t.TempDir(), "runner.db")}
}

// PostgresDSN returns the test server's URL, failing the test with how to get one when it is
// not set.
func PostgresDSN(t testing.TB) string {
	dsn := os.Getenv(PostgresEnv)
	if dsn == "" {
		t.Fatalf("%s is not set: the Postgres tests need a server. .ci/run starts one; by hand, e.g.:\n"+
			"  apt-get install -y postgresql; PGDATA=$(mktemp -d); chown postgres $PGDATA\n"+
			"  su postgres -c \"/usr/lib/postgresql/*/bin/initdb -D $PGDATA -A trust -U postgres\"\n"+
			"  su postgres -c \"/usr/lib/postgresql/*/bin/pg_ctl -D $PGDATA -o '-p 55432 -k /tmp -c listen_addresses=127.0.0.1' -w start\"\n"+
			"  export %s='postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable'", PostgresEnv, PostgresEnv)
	}
	return dsn
}

// Postgres makes a fresh schema on the test server (dropped when the test ends), so parallel
// tests never see each other's rows.
func Postgres(t testing.TB) DB {
	base := PostgresDSN(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s=%q is not a URL: %v", PostgresEnv, base, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "storetest_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("connect to %s: %v", u.Redacted(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema %s on %s (is the server up?): %v", schema, u.Redacted(), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return DB{DSN: u.String()}
}

func open(t testing.TB, dsn string, opts []store.Option) store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := store.Open(ctx, dsn, opts...)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

// Clock is a settable clock shared by several stores, for lease expiry and retry delays.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at a fixed instant.
func NewClock() *Clock {
	return &Clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func ctxT(t *testing.T) context.Context { return t.Context() }

// mustFailure carries a failed must from the suite's helpers to failOnMust.
type mustFailure struct {
	where string
	err   error
}

// must returns v, or fails the test (through failOnMust, deferred by Run) when err is not nil;
// Go cannot pass t along with a multi-value call, hence the panic.
func must[T any](v T, err error) T {
	if err != nil {
		_, file, line, _ := runtime.Caller(1)
		panic(mustFailure{where: fmt.Sprintf("%s:%d", filepath.Base(file), line), err: err})
	}
	return v
}

func failOnMust(t *testing.T) {
	if r := recover(); r != nil {
		f, ok := r.(mustFailure)
		if !ok {
			panic(r)
		}
		t.Fatalf("%s: %v", f.where, f.err)
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
