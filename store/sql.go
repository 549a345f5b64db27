package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sqlStore is the one implementation; the dialects differ only in how they are opened, in the
// row locks Postgres needs (SQLite has a single writer connection, so its statements are already
// serialized) and in SQLite's group commit of deliveries.
type sqlStore struct {
	dialect   string
	w         *sql.DB // every write goes here (one connection on SQLite)
	r         *sql.DB // reads; the same as w on Postgres
	now       func() time.Time
	forUpdate string // " FOR UPDATE" on Postgres
	skipLock  string // " FOR UPDATE SKIP LOCKED" on Postgres

	// SQLite group commit: RecordDelivery hands its delivery to the committer goroutine.
	deliveries chan deliveryReq
	// stmts caches statements prepared on the SQLite writer connection for the hot path: parsing
	// and planning cost more CPU than executing them. (pgx caches prepared statements itself.)
	stmts     sync.Map // query → *sql.Stmt
	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ Store = (*sqlStore)(nil)

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// nz keeps NOT NULL blob columns non-null: database/sql sends a nil slice as NULL.
func nz(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

func (s *sqlStore) tx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", what, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", what, err)
	}
	return nil
}

// queryRow runs a hot-path query in tx, through a cached prepared statement on SQLite.
func (s *sqlStore) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if s.deliveries == nil { // not SQLite
		return tx.QueryRowContext(ctx, query, args...)
	}
	st, ok := s.stmts.Load(query)
	if !ok {
		return tx.QueryRowContext(ctx, query, args...)
	}
	return tx.StmtContext(ctx, st.(*sql.Stmt)).QueryRowContext(ctx, args...)
}

// prepareHot prepares the hot-path statements on the SQLite writer; it must run while no
// transaction holds the writer's one connection.
func (s *sqlStore) prepareHot(ctx context.Context) error {
	for _, q := range []string{qInsertDelivery, qReacceptDelivery, qInsertJob} {
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", strings.Fields(q)[0:3], err)
		}
		s.stmts.Store(q, st)
	}
	return nil
}

// placeholders returns "$first, $first+1, …" for n values.
func placeholders(first, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(first+i))
	}
	return b.String()
}

// The statements of RecordDelivery, prepared once on SQLite.
const (
	qInsertDelivery = `INSERT INTO deliveries (id, event, body, received_at, status, updated_at)
		VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT (id) DO NOTHING RETURNING generation`
	qReacceptDelivery = `UPDATE deliveries SET status = 'pending', error = '', generation = generation + 1,
			event = $2, body = $3, received_at = $4, updated_at = $5
			WHERE id = $1 AND status = 'failed' RETURNING generation`
	qInsertJob = `INSERT INTO jobs (kind, key, payload, run_id, delivery_id, state, max_attempts, run_after,
			result, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, 'available', $6, $7, $8, $9, $9) ON CONFLICT (key) DO NOTHING RETURNING id`
)

// qInsertDeliveryAndJobPG inserts a new delivery and its intake job in one statement
// (Postgres allows INSERT in a WITH clause; SQLite does not).
const qInsertDeliveryAndJobPG = `WITH d AS (
		INSERT INTO deliveries (id, event, body, received_at, status, updated_at)
		VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT (id) DO NOTHING RETURNING id)
	INSERT INTO jobs (kind, key, payload, run_id, delivery_id, state, max_attempts, run_after, result, created_at, updated_at)
	SELECT $6, $7, convert_to(d.id, 'UTF8'), '', d.id, 'available', $8, $5, ''::bytea, $5, $5 FROM d
	RETURNING id`

// ---- deliveries ----

func checkDelivery(d Delivery) error {
	if d.ID == "" {
		return errors.New("record delivery: empty delivery id")
	}
	if d.Event == "" {
		return fmt.Errorf("record delivery %q: empty event name", d.ID)
	}
	return nil
}

func (s *sqlStore) RecordDelivery(ctx context.Context, d Delivery) (bool, error) {
	if err := checkDelivery(d); err != nil {
		return false, err
	}
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = s.now()
	}
	if s.deliveries != nil {
		return s.recordGrouped(ctx, d)
	}
	if s.dialect == "postgres" {
		// The common case, a new delivery, in one statement and one round trip; a duplicate
		// falls through to the transaction, which also handles a failed delivery sent again.
		var id int64
		err := s.w.QueryRowContext(ctx, qInsertDeliveryAndJobPG, d.ID, d.Event, encodeBody(d.Body), micros(d.ReceivedAt),
			micros(s.now()), KindIntake, KindIntake+"/"+d.ID+"/1", DefaultMaxAttempts).Scan(&id)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, fmt.Errorf("record delivery %s: %w", d.ID, err)
		}
	}
	var fresh bool
	err := s.tx(ctx, "record delivery "+d.ID, func(tx *sql.Tx) error {
		var err error
		fresh, err = s.recordDeliveryTx(ctx, tx, d)
		return err
	})
	return fresh, err
}

// recordDeliveryTx inserts the delivery, or accepts a failed one again, and enqueues its intake
// job in tx.
func (s *sqlStore) recordDeliveryTx(ctx context.Context, tx *sql.Tx, d Delivery) (bool, error) {
	now := micros(s.now())
	var gen int
	err := s.queryRow(ctx, tx, qInsertDelivery,
		d.ID, d.Event, encodeBody(d.Body), micros(d.ReceivedAt), now).Scan(&gen)
	if errors.Is(err, sql.ErrNoRows) {
		err = s.queryRow(ctx, tx, qReacceptDelivery,
			d.ID, d.Event, encodeBody(d.Body), micros(d.ReceivedAt), now).Scan(&gen)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil // a duplicate of a delivery that is pending or done
		}
	}
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", d.ID, err)
	}
	_, _, err = s.enqueueTx(ctx, tx, Job{
		Kind:       KindIntake,
		Key:        KindIntake + "/" + d.ID + "/" + strconv.Itoa(gen),
		Payload:    []byte(d.ID),
		DeliveryID: d.ID,
	})
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", d.ID, err)
	}
	return true, nil
}

func (s *sqlStore) GetDelivery(ctx context.Context, id string) (Delivery, error) {
	var d Delivery
	var recv, upd int64
	err := s.r.QueryRowContext(ctx, `SELECT id, event, body, received_at, status, error, generation, updated_at
		FROM deliveries WHERE id = $1`, id).Scan(&d.ID, &d.Event, &d.Body, &recv, &d.Status, &d.Error, &d.Generation, &upd)
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, fmt.Errorf("get delivery %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("get delivery %q: %w", id, err)
	}
	d.ReceivedAt, d.UpdatedAt = fromMicros(recv), fromMicros(upd)
	if d.Body, err = decodeBody(d.Body); err != nil {
		return Delivery{}, fmt.Errorf("get delivery %q: %w", id, err)
	}
	return d, nil
}

// endDelivery marks the delivery of a job that ended; only a pending delivery changes, so an
// old generation's job cannot undo a newer state.
func (s *sqlStore) endDelivery(ctx context.Context, tx *sql.Tx, deliveryID, status, reason string) error {
	if deliveryID == "" {
		return nil
	}
	_, err := tx.ExecContext(ctx, `UPDATE deliveries SET status = $1, error = $2, updated_at = $3
		WHERE id = $4 AND status = 'pending'`, status, reason, micros(s.now()), deliveryID)
	if err != nil {
		return fmt.Errorf("mark delivery %s %s: %w", deliveryID, status, err)
	}
	return nil
}

// ---- runs ----

const runCols = `id, key, repo, routine, sha, event_kind, delivery_id, concurrency_group, plan, status, conclusion, error,
	created_at, updated_at, started_at, finished_at, rerun_of`

// runColsNoPlan selects an empty plan so scanRun serves both.
const runColsNoPlan = `id, key, repo, routine, sha, event_kind, delivery_id, concurrency_group, '', status, conclusion, error,
	created_at, updated_at, started_at, finished_at, rerun_of`

type scanner interface{ Scan(dest ...any) error }

func scanRun(sc scanner) (Run, error) {
	var r Run
	var plan any
	var c, u, st, f int64
	if err := sc.Scan(&r.ID, &r.Key, &r.Repo, &r.Routine, &r.SHA, &r.EventKind, &r.DeliveryID, &r.ConcurrencyGroup,
		&plan, &r.Status, &r.Conclusion, &r.Error, &c, &u, &st, &f, &r.RerunOf); err != nil {
		return Run{}, err
	}
	switch p := plan.(type) {
	case []byte:
		if len(p) > 0 {
			r.Plan = append([]byte(nil), p...)
		}
	case string:
		if p != "" {
			r.Plan = []byte(p)
		}
	}
	r.CreatedAt, r.UpdatedAt, r.StartedAt, r.FinishedAt = fromMicros(c), fromMicros(u), fromMicros(st), fromMicros(f)
	return r, nil
}

func (s *sqlStore) CreateRun(ctx context.Context, r Run) (Run, bool, error) {
	if r.ID == "" {
		r.ID = randomHex(16)
	}
	if r.Key == "" {
		r.Key = r.ID
	}
	if r.Status == "" {
		r.Status = RunQueued
	}
	now := s.now()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	var stored Run
	var created bool
	err := s.tx(ctx, "create run "+r.Key, func(tx *sql.Tx) error {
		var id string
		err := tx.QueryRowContext(ctx, `INSERT INTO runs (`+runCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
			ON CONFLICT DO NOTHING RETURNING id`,
			r.ID, r.Key, r.Repo, r.Routine, r.SHA, r.EventKind, r.DeliveryID, r.ConcurrencyGroup, nz(r.Plan),
			r.Status, r.Conclusion, r.Error, micros(r.CreatedAt), micros(now), micros(r.StartedAt), micros(r.FinishedAt), r.RerunOf).Scan(&id)
		switch {
		case err == nil:
			created = true
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("create run %q: %w", r.Key, err)
		}
		stored, err = scanRun(tx.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs WHERE key = $1`, r.Key))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("create run %q: id %q is taken by a run with another key: %w", r.Key, r.ID, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create run %q: read it back: %w", r.Key, err)
		}
		return nil
	})
	return stored, created, err
}

func (s *sqlStore) UpdateRun(ctx context.Context, r Run) error {
	sets := []string{"conclusion = $2", "error = $3", "updated_at = $4"}
	args := []any{r.ID, r.Conclusion, r.Error, micros(s.now())}
	add := func(col string, v any) {
		args = append(args, v)
		sets = append(sets, col+" = $"+strconv.Itoa(len(args)))
	}
	if r.Status != "" {
		add("status", r.Status)
	}
	if r.Plan != nil {
		add("plan", r.Plan)
	}
	if r.SHA != "" {
		add("sha", r.SHA)
	}
	if !r.StartedAt.IsZero() {
		add("started_at", micros(r.StartedAt))
	}
	if !r.FinishedAt.IsZero() {
		add("finished_at", micros(r.FinishedAt))
	}
	return s.tx(ctx, "update run "+r.ID, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT status FROM runs WHERE id = $1`+s.forUpdate, r.ID).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("update run %q: %w", r.ID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("update run %q: %w", r.ID, err)
		}
		to := r.Status
		if to == "" {
			to = cur
		}
		if to == RunQueued && cur == RunCompleted {
			return fmt.Errorf("update run %q: a completed run starts again only through Rerun: %w", r.ID, ErrIllegalTransition)
		}
		if err := CheckRunMove(cur, to); err != nil {
			return fmt.Errorf("update run %q: %w", r.ID, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET `+strings.Join(sets, ", ")+` WHERE id = $1`, args...); err != nil {
			return fmt.Errorf("update run %q: %w", r.ID, err)
		}
		if r.Status == RunCompleted {
			if _, err := tx.ExecContext(ctx, `DELETE FROM concurrency_groups WHERE run_id = $1`, r.ID); err != nil {
				return fmt.Errorf("update run %q: release its concurrency groups: %w", r.ID, err)
			}
		}
		return nil
	})
}

func (s *sqlStore) Rerun(ctx context.Context, runID string) (int, error) {
	var n int64
	err := s.tx(ctx, "rerun run "+runID, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT status FROM runs WHERE id = $1`+s.forUpdate, runID).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("rerun run %q: %w", runID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("rerun run %q: %w", runID, err)
		}
		if err := CheckRunMove(cur, RunQueued); err != nil || cur != RunCompleted {
			return fmt.Errorf("rerun run %q: it is %s, and only a completed run is run again: %w", runID, cur, ErrIllegalTransition)
		}
		now := micros(s.now())
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = $1, conclusion = '', error = '', started_at = 0, finished_at = 0,
			updated_at = $2 WHERE id = $3`, RunQueued, now, runID); err != nil {
			return fmt.Errorf("rerun run %q: %w", runID, err)
		}
		from := jobStatesTo(JobAvailable)
		args := []any{now, runID}
		for _, st := range from {
			if st != JobLeased { // a held job is not finished: its worker still ends it
				args = append(args, st)
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'available', attempts = 0, last_error = '', result = '',
			lease_owner = '', lease_expires = 0, run_after = $1, finished_at = 0, updated_at = $1
			WHERE run_id = $2 AND state IN (`+placeholders(3, len(args)-2)+`)`, args...)
		if err != nil {
			return fmt.Errorf("rerun run %q: make its jobs available: %w", runID, err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("rerun run %q: %w", runID, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM run_files WHERE run_id = $1`, runID); err != nil {
			return fmt.Errorf("rerun run %q: delete its earlier files: %w", runID, err)
		}
		// The jobs start over: neither their earlier states nor cancel requests apply.
		if _, err := tx.ExecContext(ctx, `DELETE FROM run_jobs WHERE run_id = $1`, runID); err != nil {
			return fmt.Errorf("rerun run %q: forget its earlier jobs: %w", runID, err)
		}
		return nil
	})
	return int(n), err
}

func (s *sqlStore) GetRun(ctx context.Context, id string) (Run, error) {
	r, err := scanRun(s.r.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, fmt.Errorf("get run %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("get run %q: %w", id, err)
	}
	return r, nil
}

// filtered completes a listing query: a WHERE clause with "column = value" for each filter
// whose value is set (as bind parameters), then order and a limit (defaultLimit when <= 0).
func filtered(selectFrom, order string, limit, defaultLimit int, filters ...[2]string) (string, []any) {
	var where []string
	var args []any
	for _, f := range filters {
		if f[1] != "" {
			args = append(args, f[1])
			where = append(where, f[0]+" = $"+strconv.Itoa(len(args)))
		}
	}
	q := selectFrom
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	if limit <= 0 {
		limit = defaultLimit
	}
	args = append(args, limit)
	return q + ` ` + order + ` LIMIT $` + strconv.Itoa(len(args)), args
}

func (s *sqlStore) ListRuns(ctx context.Context, f RunFilter) ([]Run, error) {
	q, args := runListQuery(f)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return out, nil
}

func (s *sqlStore) CountRunning(ctx context.Context, repo string) (int, error) {
	var n int
	var err error
	if repo == "" {
		err = s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs WHERE status = 'running'`).Scan(&n)
	} else {
		err = s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM runs WHERE status = 'running' AND repo = $1`, repo).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("count running runs of %q: %w", repo, err)
	}
	return n, nil
}

// ---- jobs ----

const jobCols = `id, kind, key, payload, run_id, delivery_id, max_attempts, run_after, state, attempts,
	lease_owner, lease_expires, result, last_error, log_path, created_at, updated_at, finished_at`

func scanJob(sc scanner) (Job, error) {
	var j Job
	var ra, le, c, u, f int64
	if err := sc.Scan(&j.ID, &j.Kind, &j.Key, &j.Payload, &j.RunID, &j.DeliveryID, &j.MaxAttempts, &ra, &j.State, &j.Attempts,
		&j.LeaseOwner, &le, &j.Result, &j.LastError, &j.LogPath, &c, &u, &f); err != nil {
		return Job{}, err
	}
	if len(j.Result) == 0 {
		j.Result = nil
	}
	j.RunAfter, j.LeaseExpiresAt = fromMicros(ra), fromMicros(le)
	j.CreatedAt, j.UpdatedAt, j.FinishedAt = fromMicros(c), fromMicros(u), fromMicros(f)
	return j, nil
}

func scanJobs(rows *sql.Rows) ([]Job, error) {
	defer rows.Close()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

func (s *sqlStore) Enqueue(ctx context.Context, j Job) (int64, bool, error) {
	var id int64
	var fresh bool
	err := s.tx(ctx, "enqueue "+j.Kind+" job", func(tx *sql.Tx) error {
		var err error
		id, fresh, err = s.enqueueTx(ctx, tx, j)
		return err
	})
	return id, fresh, err
}

func (s *sqlStore) enqueueTx(ctx context.Context, tx *sql.Tx, j Job) (int64, bool, error) {
	if j.Kind == "" {
		return 0, false, errors.New("enqueue job: empty kind")
	}
	if j.Key == "" {
		j.Key = "random/" + randomHex(16)
	}
	if j.MaxAttempts <= 0 {
		j.MaxAttempts = DefaultMaxAttempts
	}
	now := s.now()
	if j.RunAfter.IsZero() {
		j.RunAfter = now
	}
	var id int64
	err := s.queryRow(ctx, tx, qInsertJob,
		j.Kind, j.Key, nz(j.Payload), j.RunID, j.DeliveryID, j.MaxAttempts, micros(j.RunAfter), []byte{}, micros(now)).Scan(&id)
	if err == nil {
		return id, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, false, fmt.Errorf("enqueue %s job %q: %w", j.Kind, j.Key, err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT id FROM jobs WHERE key = $1`, j.Key).Scan(&id); err != nil {
		return 0, false, fmt.Errorf("enqueue %s job %q: find the existing job: %w", j.Kind, j.Key, err)
	}
	return id, false, nil
}

func (s *sqlStore) Lease(ctx context.Context, owner string, kinds []string, n int, ttl time.Duration) ([]Job, error) {
	if owner == "" {
		return nil, errors.New("lease jobs: empty owner")
	}
	if n <= 0 {
		return nil, nil
	}
	now := s.now()
	args := []any{owner, micros(now.Add(ttl)), micros(now), n}
	kindClause := ""
	if len(kinds) > 0 {
		kindClause = " AND kind IN (" + placeholders(len(args)+1, len(kinds)) + ")"
		for _, k := range kinds {
			args = append(args, k)
		}
	}
	rows, err := s.w.QueryContext(ctx, `UPDATE jobs SET state = 'leased', attempts = attempts + 1, lease_owner = $1,
			lease_expires = $2, updated_at = $3
		WHERE id IN (SELECT id FROM jobs WHERE state = 'available' AND run_after <= $3`+kindClause+`
			ORDER BY run_after, id LIMIT $4`+s.skipLock+`)
		RETURNING `+jobCols, args...)
	if err != nil {
		return nil, fmt.Errorf("lease jobs for %s: %w", owner, err)
	}
	jobs, err := scanJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("lease jobs for %s: %w", owner, err)
	}
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].ID < jobs[b].ID })
	return jobs, nil
}

func (s *sqlStore) Heartbeat(ctx context.Context, ids []int64, owner string, ttl time.Duration) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	now := s.now()
	args := []any{micros(now.Add(ttl)), micros(now), owner}
	for _, id := range ids {
		args = append(args, id)
	}
	rows, err := s.w.QueryContext(ctx, `UPDATE jobs SET lease_expires = $1, updated_at = $2
		WHERE state = 'leased' AND lease_owner = $3 AND id IN (`+placeholders(4, len(ids))+`) RETURNING id`, args...)
	if err != nil {
		return nil, fmt.Errorf("heartbeat %d leases of %s: %w", len(ids), owner, err)
	}
	defer rows.Close()
	held := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("heartbeat leases of %s: %w", owner, err)
		}
		held[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("heartbeat leases of %s: %w", owner, err)
	}
	var lost []int64
	for _, id := range ids {
		if !held[id] {
			lost = append(lost, id)
		}
	}
	return lost, nil
}

// leased reads a job owner holds, locking it on Postgres; ErrLeaseLost otherwise. to is the
// state the caller moves it to.
func (s *sqlStore) leased(ctx context.Context, tx *sql.Tx, id int64, owner, what, to string) (Job, error) {
	j, err := scanJob(tx.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = $1`+s.forUpdate, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("%s job %d: %w", what, id, ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("%s job %d: %w", what, id, err)
	}
	if j.State != JobLeased || j.LeaseOwner != owner {
		return Job{}, fmt.Errorf("%s job %d as %s (it is %s, owner %q): %w", what, id, owner, j.State, j.LeaseOwner, ErrLeaseLost)
	}
	if err := CheckJobMove(j.State, to); err != nil {
		return Job{}, fmt.Errorf("%s job %d: %w", what, id, err)
	}
	return j, nil
}

// unrun sends the run of a job given back to the queue (requeued, retried, rescued) from
// running back to queued, in the job's transaction: a run is running only while its job is
// held. A waiting run stays waiting; a completed one is final.
func (s *sqlStore) unrun(ctx context.Context, tx *sql.Tx, runID string) error {
	if runID == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE runs SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4`,
		RunQueued, micros(s.now()), runID, RunRunning); err != nil {
		return fmt.Errorf("give run %s back to the queue: %w", runID, err)
	}
	return nil
}

func (s *sqlStore) Complete(ctx context.Context, id int64, owner string, result []byte) error {
	return s.tx(ctx, fmt.Sprintf("complete job %d", id), func(tx *sql.Tx) error {
		j, err := s.leased(ctx, tx, id, owner, "complete", JobCompleted)
		if err != nil {
			return err
		}
		now := micros(s.now())
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'completed', result = $1, lease_owner = '', lease_expires = 0,
			finished_at = $2, updated_at = $2 WHERE id = $3`, nz(result), now, id); err != nil {
			return fmt.Errorf("complete job %d: %w", id, err)
		}
		return s.endDelivery(ctx, tx, j.DeliveryID, DeliveryDone, "")
	})
}

func (s *sqlStore) Fail(ctx context.Context, id int64, owner, reason string, retryAfter time.Duration) (bool, error) {
	var dead bool
	err := s.tx(ctx, fmt.Sprintf("fail job %d", id), func(tx *sql.Tx) error {
		// Leased moves to available (a retry) or dead alike.
		j, err := s.leased(ctx, tx, id, owner, "fail", JobDead)
		if err != nil {
			return err
		}
		now := s.now()
		if retryAfter >= 0 && j.Attempts < j.MaxAttempts {
			_, err = tx.ExecContext(ctx, `UPDATE jobs SET state = 'available', last_error = $1, lease_owner = '', lease_expires = 0,
				run_after = $2, updated_at = $3 WHERE id = $4`, reason, micros(now.Add(retryAfter)), micros(now), id)
			if err != nil {
				return fmt.Errorf("fail job %d: %w", id, err)
			}
			return s.unrun(ctx, tx, j.RunID)
		}
		dead = true
		if retryAfter >= 0 {
			reason = fmt.Sprintf("%s (gave up after %d attempts)", reason, j.Attempts)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'dead', last_error = $1, lease_owner = '', lease_expires = 0,
			finished_at = $2, updated_at = $2 WHERE id = $3`, reason, micros(now), id); err != nil {
			return fmt.Errorf("fail job %d: %w", id, err)
		}
		return s.endDelivery(ctx, tx, j.DeliveryID, DeliveryFailed, reason)
	})
	return dead, err
}

func (s *sqlStore) Requeue(ctx context.Context, id int64, owner string, after time.Duration) error {
	return s.tx(ctx, fmt.Sprintf("requeue job %d", id), func(tx *sql.Tx) error {
		j, err := s.leased(ctx, tx, id, owner, "requeue", JobAvailable)
		if err != nil {
			return err
		}
		now := s.now()
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'available',
			attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END,
			lease_owner = '', lease_expires = 0, run_after = $1, updated_at = $2 WHERE id = $3`,
			micros(now.Add(max(after, 0))), micros(now), id); err != nil {
			return fmt.Errorf("requeue job %d: %w", id, err)
		}
		return s.unrun(ctx, tx, j.RunID)
	})
}

func (s *sqlStore) RescueExpired(ctx context.Context, at time.Time) ([]Job, error) {
	var out []Job
	err := s.tx(ctx, "rescue expired leases", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE state = 'leased' AND lease_expires < $1
			ORDER BY id LIMIT 1000`+s.skipLock, micros(at))
		if err != nil {
			return fmt.Errorf("rescue expired leases: %w", err)
		}
		expired, err := scanJobs(rows)
		if err != nil {
			return fmt.Errorf("rescue expired leases: %w", err)
		}
		now := micros(s.now())
		for _, j := range expired {
			if j.Attempts >= j.MaxAttempts {
				j.State = JobDead
				j.LastError = fmt.Sprintf("lease expired after %d attempts (last owner %s)", j.Attempts, j.LeaseOwner)
				if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'dead', last_error = $1, lease_owner = '',
					lease_expires = 0, finished_at = $2, updated_at = $2 WHERE id = $3`, j.LastError, now, j.ID); err != nil {
					return fmt.Errorf("rescue job %d: %w", j.ID, err)
				}
				if err := s.endDelivery(ctx, tx, j.DeliveryID, DeliveryFailed, j.LastError); err != nil {
					return err
				}
				j.FinishedAt = fromMicros(now)
			} else {
				j.State = JobAvailable
				j.LastError = fmt.Sprintf("lease of %s expired during attempt %d", j.LeaseOwner, j.Attempts)
				if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = 'available', last_error = $1, lease_owner = '',
					lease_expires = 0, run_after = $2, updated_at = $2 WHERE id = $3`, j.LastError, now, j.ID); err != nil {
					return fmt.Errorf("rescue job %d: %w", j.ID, err)
				}
				if err := s.unrun(ctx, tx, j.RunID); err != nil {
					return err
				}
				j.RunAfter = fromMicros(now)
			}
			j.LeaseOwner, j.LeaseExpiresAt, j.UpdatedAt = "", time.Time{}, fromMicros(now)
			out = append(out, j)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *sqlStore) CancelJobs(ctx context.Context, runID, reason string) (int, error) {
	if runID == "" {
		return 0, errors.New("cancel jobs: empty run id")
	}
	now := micros(s.now())
	from := jobStatesTo(JobCancelled)
	args := []any{reason, now, runID}
	for _, st := range from {
		args = append(args, st)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE jobs SET state = 'cancelled', last_error = $1, lease_owner = '', lease_expires = 0,
		finished_at = $2, updated_at = $2 WHERE run_id = $3 AND state IN (`+placeholders(4, len(from))+`)`, args...)
	if err != nil {
		return 0, fmt.Errorf("cancel jobs of run %s: %w", runID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("cancel jobs of run %s: %w", runID, err)
	}
	return int(n), nil
}

func (s *sqlStore) GetJob(ctx context.Context, id int64) (Job, error) {
	j, err := scanJob(s.r.QueryRowContext(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("get job %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("get job %d: %w", id, err)
	}
	return j, nil
}

func (s *sqlStore) ListJobs(ctx context.Context, f JobFilter) ([]Job, error) {
	q, args := filtered(`SELECT `+jobCols+` FROM jobs`, `ORDER BY id`, f.Limit, 1000,
		[2]string{"run_id", f.RunID}, [2]string{"kind", f.Kind}, [2]string{"state", f.State})
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	jobs, err := scanJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return jobs, nil
}

func (s *sqlStore) SetJobLog(ctx context.Context, id int64, path string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE jobs SET log_path = $1, updated_at = $2 WHERE id = $3`, path, micros(s.now()), id)
	if err != nil {
		return fmt.Errorf("set log of job %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("set log of job %d: %w", id, ErrNotFound)
	}
	return nil
}

func (s *sqlStore) CountJobs(ctx context.Context) (map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT state, COUNT(*) FROM jobs GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count jobs: %w", err)
		}
		out[st] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	return out, nil
}

// ---- concurrency groups ----

func (s *sqlStore) AcquireGroup(ctx context.Context, group, runID string) (bool, string, error) {
	if group == "" || runID == "" {
		return false, "", fmt.Errorf("acquire concurrency group %q for run %q: empty group or run id", group, runID)
	}
	var ok bool
	var holder string
	err := s.tx(ctx, "acquire concurrency group "+group, func(tx *sql.Tx) error {
		now := micros(s.now())
		if _, err := tx.ExecContext(ctx, `INSERT INTO concurrency_groups (name, run_id, acquired_at) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO NOTHING`, group, runID, now); err != nil {
			return fmt.Errorf("acquire concurrency group %q: %w", group, err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT run_id FROM concurrency_groups WHERE name = $1`+s.forUpdate, group).Scan(&holder); err != nil {
			return fmt.Errorf("acquire concurrency group %q: read holder: %w", group, err)
		}
		if holder == runID {
			ok = true
			return nil
		}
		var status string
		err := tx.QueryRowContext(ctx, `SELECT status FROM runs WHERE id = $1`, holder).Scan(&status)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("acquire concurrency group %q: read holder run %s: %w", group, holder, err)
		}
		if err == nil && status != RunCompleted {
			return nil // held by a live run
		}
		if _, err := tx.ExecContext(ctx, `UPDATE concurrency_groups SET run_id = $1, acquired_at = $2 WHERE name = $3`,
			runID, now, group); err != nil {
			return fmt.Errorf("acquire concurrency group %q: take it over from %s: %w", group, holder, err)
		}
		ok, holder = true, runID
		return nil
	})
	return ok, holder, err
}

func (s *sqlStore) ReleaseGroup(ctx context.Context, group, runID string) error {
	if _, err := s.w.ExecContext(ctx, `DELETE FROM concurrency_groups WHERE name = $1 AND run_id = $2`, group, runID); err != nil {
		return fmt.Errorf("release concurrency group %q of run %s: %w", group, runID, err)
	}
	return nil
}

// ---- schedules ----

func (s *sqlStore) ClaimTick(ctx context.Context, routineKey string, tick time.Time) (bool, error) {
	if routineKey == "" || tick.IsZero() {
		return false, fmt.Errorf("claim schedule tick %q at %v: empty routine or tick", routineKey, tick)
	}
	var r string
	err := s.w.QueryRowContext(ctx, `INSERT INTO schedule_ticks (routine, tick, claimed_at) VALUES ($1, $2, $3)
		ON CONFLICT (routine, tick) DO NOTHING RETURNING routine`, routineKey, micros(tick), micros(s.now())).Scan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim schedule tick %q at %v: %w", routineKey, tick, err)
	}
	return true, nil
}

func (s *sqlStore) LastTick(ctx context.Context, routineKey string) (time.Time, error) {
	var v sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(tick) FROM schedule_ticks WHERE routine = $1`, routineKey).Scan(&v); err != nil {
		return time.Time{}, fmt.Errorf("last schedule tick of %q: %w", routineKey, err)
	}
	if !v.Valid {
		return time.Time{}, nil
	}
	return fromMicros(v.Int64), nil
}

// ---- run files ----

func (s *sqlStore) SaveRunFile(ctx context.Context, runID, name string, data []byte) error {
	if runID == "" || name == "" {
		return fmt.Errorf("save run file %q of run %q: empty run id or name", name, runID)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO run_files (run_id, name, data, saved_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (run_id, name) DO UPDATE SET data = excluded.data, saved_at = excluded.saved_at`,
		runID, name, encodeBody(data), micros(s.now()))
	if err != nil {
		return fmt.Errorf("save run file %s of run %s: %w", name, runID, err)
	}
	return nil
}

func (s *sqlStore) RunFile(ctx context.Context, runID, name string) ([]byte, error) {
	var data []byte
	err := s.r.QueryRowContext(ctx, `SELECT data FROM run_files WHERE run_id = $1 AND name = $2`, runID, name).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("run file %s of run %s: %w", name, runID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read run file %s of run %s: %w", name, runID, err)
	}
	out, err := decodeBody(data)
	if err != nil {
		return nil, fmt.Errorf("run file %s of run %s: %w", name, runID, err)
	}
	return out, nil
}

// ---- identity ----

func (s *sqlStore) Identity(ctx context.Context) (string, error) {
	id, err := s.meta(ctx, "identity", 16)
	if err != nil {
		return "", fmt.Errorf("store identity: %w", err)
	}
	return id, nil
}

func (s *sqlStore) Key(ctx context.Context, name string) ([]byte, error) {
	if name == "" || name == "identity" {
		return nil, fmt.Errorf("store key %q: not a key's name", name)
	}
	v, err := s.meta(ctx, "key:"+name, 32)
	if err != nil {
		return nil, fmt.Errorf("store key %s: %w", name, err)
	}
	key, err := hex.DecodeString(v)
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("store key %s: the stored value is not a 32-byte hex key; delete the row key:%s of store_meta to make a new one", name, name)
	}
	return key, nil
}

// meta returns the store_meta value of key, made of n random bytes (hex) by whichever store
// sharing the database asks first.
func (s *sqlStore) meta(ctx context.Context, key string, n int) (string, error) {
	if _, err := s.w.ExecContext(ctx, `INSERT INTO store_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`,
		key, randomHex(n)); err != nil {
		return "", err
	}
	var v string
	if err := s.w.QueryRowContext(ctx, `SELECT value FROM store_meta WHERE key = $1`, key).Scan(&v); err != nil {
		return "", err
	}
	return v, nil
}

// ---- daemons ----

func (s *sqlStore) SetDaemonAddr(ctx context.Context, owner, internalURL string) error {
	if owner == "" || internalURL == "" {
		return fmt.Errorf("record daemon address %q of %q: empty owner or address", internalURL, owner)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO daemons (owner, internal_url, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (owner) DO UPDATE SET internal_url = excluded.internal_url, updated_at = excluded.updated_at`,
		owner, internalURL, micros(s.now()))
	if err != nil {
		return fmt.Errorf("record daemon address of %s: %w", owner, err)
	}
	return nil
}

func (s *sqlStore) DaemonAddr(ctx context.Context, owner string) (string, error) {
	var u string
	err := s.r.QueryRowContext(ctx, `SELECT internal_url FROM daemons WHERE owner = $1`, owner).Scan(&u)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("daemon address of %s: %w", owner, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("read daemon address of %s: %w", owner, err)
	}
	return u, nil
}

// ---- model spend ----

func (s *sqlStore) AddSpend(ctx context.Context, day, repo, routine string, usd float64) error {
	if usd == 0 {
		return nil
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO model_spend (day, repo, routine, usd) VALUES ($1, $2, $3, $4)
		ON CONFLICT (day, repo, routine) DO UPDATE SET usd = model_spend.usd + excluded.usd`, day, repo, routine, usd)
	if err != nil {
		return fmt.Errorf("record $%.4f of model spend of %s %s on %s: %w", usd, repo, routine, day, err)
	}
	return nil
}

func (s *sqlStore) DaySpend(ctx context.Context, day, repo, routine string) (float64, error) {
	var usd float64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(SUM(usd), 0) FROM model_spend
		WHERE day = $1 AND repo = $2 AND ($3 = '' OR routine = $3)`, day, repo, routine).Scan(&usd)
	if err != nil {
		return 0, fmt.Errorf("read the model spend of %s on %s: %w", repo, day, err)
	}
	return usd, nil
}

func (s *sqlStore) DaySpends(ctx context.Context, day string) ([]Spend, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT day, repo, routine, usd FROM model_spend WHERE day = $1 ORDER BY repo, routine`, day)
	if err != nil {
		return nil, fmt.Errorf("list the model spend of %s: %w", day, err)
	}
	defer rows.Close()
	var out []Spend
	for rows.Next() {
		var sp Spend
		if err := rows.Scan(&sp.Day, &sp.Repo, &sp.Routine, &sp.USD); err != nil {
			return nil, fmt.Errorf("list the model spend of %s: %w", day, err)
		}
		out = append(out, sp)
	}
	return out, rows.Err()
}

// ---- close ----

func (s *sqlStore) Close() error {
	s.closeOnce.Do(func() {
		if s.quit != nil {
			close(s.quit)
			s.wg.Wait()
		}
		s.stmts.Range(func(_, st any) bool {
			_ = st.(*sql.Stmt).Close()
			return true
		})
		err := s.w.Close()
		if s.r != s.w {
			err = errors.Join(err, s.r.Close())
		}
		if err != nil {
			s.closeErr = fmt.Errorf("close %s store: %w", s.dialect, err)
		}
	})
	return s.closeErr
}
