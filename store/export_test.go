package store

import (
	"context"
	"database/sql"
	"strings"
)

// HashToken is how the store keeps a token, for tests that plant rows as an older runner did.
var HashToken = hashToken

// OpenAtVersion opens the database at dsn (a storetest DSN: sqlite://… or postgres://…)
// without the Store around it, migrated up to version only, as an older runner left it.
func OpenAtVersion(ctx context.Context, dsn string, version int64) (*sql.DB, error) {
	driver, source, dialect, lock := "pgx", dsn, "postgres", pgLockSQL
	if path, ok := strings.CutPrefix(dsn, "sqlite://"); ok {
		driver, source, dialect, lock = "sqlite", "file:"+path+"?"+sqliteParams, "sqlite", ""
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		return nil, err
	}
	if err := migrateTo(ctx, db, dialect, lock, 1, version); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}
