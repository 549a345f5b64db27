package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go, no cgo)
)

// maxGroupCommit bounds how many deliveries share one transaction.
const maxGroupCommit = 512

// sqliteParams: WAL so readers never block the writer; synchronous=FULL so an acknowledged
// delivery survives a power loss; busy_timeout because a second process (a CLI reading runs)
// may hold the lock briefly; BEGIN IMMEDIATE so a transaction takes the write lock up front
// instead of failing to upgrade a read lock.
const sqliteParams = "_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)&_pragma=foreign_keys(ON)&_txlock=immediate"

// sqliteSetup runs once on the writer before anything is written. A new database gets 16 KiB
// pages: a webhook body spans a few pages instead of many, and SQLite writes the WAL one page per
// system call. Both settings persist in the file; page_size is ignored for an existing database.
const sqliteSetup = "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL"

// setWAL runs sqliteSetup. Two processes opening a new database at once both switch it to WAL,
// and SQLite answers the loser SQLITE_BUSY at once rather than through the busy timeout (the
// switch needs the lock the other holds while it reads the header): try again for a while.
func setWAL(ctx context.Context, w *sql.DB) error {
	deadline := time.Now().Add(10 * time.Second)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		_, err := w.ExecContext(ctx, sqliteSetup)
		if err == nil || !strings.Contains(err.Error(), "SQLITE_BUSY") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func openSQLite(ctx context.Context, path string, o options) (Store, error) {
	if path == "" {
		return nil, errors.New("open sqlite store: empty path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open sqlite store %q: the path may not contain '?' or '#'", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open sqlite store %q: create its directory: %w", path, err)
		}
	}
	dsn := "file:" + path + "?" + sqliteParams
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	// One writer connection: SQLite allows one writer at a time anyway, and a single connection
	// makes a claim such as UPDATE … RETURNING atomic without retrying on SQLITE_BUSY.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := setWAL(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite store %q: set WAL mode: %w", path, err)
	}
	if err := migrate(ctx, w, "sqlite", "", micros(o.now())); err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	s := &sqlStore{
		dialect:    "sqlite",
		w:          w,
		r:          r,
		now:        o.now,
		deliveries: make(chan deliveryReq),
		quit:       make(chan struct{}),
	}
	if err := s.prepareHot(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	s.wg.Add(1)
	go s.groupCommitter()
	return s, nil
}

type deliveryReq struct {
	d    Delivery
	done chan deliveryRes // buffered: the committer never blocks on a caller that left
}

type deliveryRes struct {
	fresh bool
	err   error
}

// recordGrouped hands the delivery to the committer and waits for its commit.
func (s *sqlStore) recordGrouped(ctx context.Context, d Delivery) (bool, error) {
	req := deliveryReq{d: d, done: make(chan deliveryRes, 1)}
	select {
	case s.deliveries <- req:
	case <-s.quit:
		return false, fmt.Errorf("record delivery %s: %w", d.ID, ErrClosed)
	case <-ctx.Done():
		return false, fmt.Errorf("record delivery %s: %w", d.ID, ctx.Err())
	}
	select {
	case res := <-req.done:
		return res.fresh, res.err
	case <-ctx.Done():
		// It may still commit; a retry of the webhook is then a duplicate, which is harmless.
		return false, fmt.Errorf("record delivery %s: %w", d.ID, ctx.Err())
	}
}

// groupCommitter commits the deliveries waiting at each moment in one transaction: with one fsync
// per transaction, this is what lets many concurrent webhooks be acknowledged per second.
func (s *sqlStore) groupCommitter() {
	defer s.wg.Done()
	for {
		var batch []deliveryReq
		select {
		case <-s.quit:
			return
		case req := <-s.deliveries:
			batch = append(batch, req)
		}
	drain:
		for len(batch) < maxGroupCommit {
			select {
			case req := <-s.deliveries:
				batch = append(batch, req)
			default:
				break drain
			}
		}
		s.commitBatch(batch)
	}
}

func (s *sqlStore) commitBatch(batch []deliveryReq) {
	// Not a caller's context: the batch serves many callers, and a committed delivery must not be
	// rolled back because one of them went away.
	ctx := context.Background()
	fresh := make([]bool, len(batch))
	err := s.tx(ctx, "record deliveries", func(tx *sql.Tx) error {
		for i, req := range batch {
			f, err := s.recordDeliveryTx(ctx, tx, req.d)
			if err != nil {
				return err
			}
			fresh[i] = f
		}
		return nil
	})
	if err == nil {
		for i, req := range batch {
			req.done <- deliveryRes{fresh: fresh[i]}
		}
		return
	}
	if len(batch) == 1 {
		batch[0].done <- deliveryRes{err: err}
		return
	}
	// One bad delivery must not fail the others: commit each on its own.
	for _, req := range batch {
		var f bool
		err := s.tx(ctx, "record delivery "+req.d.ID, func(tx *sql.Tx) error {
			var err error
			f, err = s.recordDeliveryTx(ctx, tx, req.d)
			return err
		})
		req.done <- deliveryRes{fresh: f, err: err}
	}
}
