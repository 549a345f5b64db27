package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations
var migrationFS embed.FS

type migration struct {
	version int64
	name    string
	sql     string
}

// migrations returns the dialect's migrations in version order. A file is named
// NNNN_description.sql; versions never change once released, new ones are appended.
func migrations(dialect string) ([]migration, error) {
	dir := path.Join("migrations", dialect)
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations %s: %w", dir, err)
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("embedded migration %s/%s: name must be NNNN_description.sql", dir, e.Name())
		}
		b, err := fs.ReadFile(migrationFS, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read embedded migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate applies the migrations not yet recorded, all in one transaction. lock runs first in
// that transaction and serializes concurrent Opens (an advisory lock on Postgres; on SQLite the
// transaction is BEGIN IMMEDIATE, which already takes the write lock).
func migrate(ctx context.Context, db *sql.DB, dialect, lock string, now int64) error {
	return migrateTo(ctx, db, dialect, lock, now, 0)
}

// migrateTo is migrate up to version upTo (0: all), so a test can build a database as an
// older runner left it and check what the newer migrations make of its rows.
func migrateTo(ctx context.Context, db *sql.DB, dialect, lock string, now, upTo int64) error {
	ms, err := migrations(dialect)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate %s store: begin: %w", dialect, err)
	}
	defer func() { _ = tx.Rollback() }()
	if lock != "" {
		if _, err := tx.ExecContext(ctx, lock); err != nil {
			return fmt.Errorf("migrate %s store: take migration lock: %w", dialect, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate %s store: create schema_migrations: %w", dialect, err)
	}
	applied := map[int64]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("migrate %s store: read applied versions: %w", dialect, err)
	}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("migrate %s store: read applied versions: %w", dialect, err)
		}
		applied[v] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate %s store: read applied versions: %w", dialect, err)
	}
	latest := ms[len(ms)-1].version
	for v := range applied {
		if v > latest {
			return fmt.Errorf("migrate %s store: the database is at schema version %d, newer than this runner knows (%d); upgrade the runner", dialect, v, latest)
		}
	}
	for _, m := range ms {
		if applied[m.version] || (upTo > 0 && m.version > upTo) {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migrate %s store: apply %s: %w", dialect, m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
			m.version, m.name, now); err != nil {
			return fmt.Errorf("migrate %s store: record %s: %w", dialect, m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate %s store: commit: %w", dialect, err)
	}
	return nil
}
