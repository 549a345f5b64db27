package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// pgMigrationLock is the advisory lock key that serializes migrations of concurrent Opens.
const pgMigrationLock = 0x61727374 // "arst"

// pgLockSQL takes pgMigrationLock until the migration's transaction ends.
var pgLockSQL = fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", pgMigrationLock)

func openPostgres(ctx context.Context, dsn string, o options) (Store, error) {
	where := redact(dsn)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres store %s: %w", where, err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres store %s: connect: %w", where, err)
	}
	if err := migrate(ctx, db, "postgres", pgLockSQL, micros(o.now())); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres store %s: %w", where, err)
	}
	return &sqlStore{
		dialect:   "postgres",
		w:         db,
		r:         db,
		now:       o.now,
		forUpdate: " FOR UPDATE",
		skipLock:  " FOR UPDATE SKIP LOCKED",
	}, nil
}

// redact drops the password from a DSN before it goes into an error message.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable postgres URL)"
	}
	return u.Redacted()
}
