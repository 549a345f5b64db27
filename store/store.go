package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors callers compare with errors.Is.
var (
	// ErrNotFound: no row with that id.
	ErrNotFound = errors.New("not found")
	// ErrLeaseLost: the job is no longer leased by this owner (its lease expired and was rescued,
	// it was cancelled, or it was already completed). The worker must drop its result.
	ErrLeaseLost = errors.New("lease lost")
	// ErrExists: a unique name is already taken.
	ErrExists = errors.New("already exists")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
)

// KindIntake is the kind of the job RecordDelivery enqueues; its payload is the delivery id.
const KindIntake = "intake"

// Delivery statuses.
const (
	DeliveryPending = "pending" // accepted, its intake job is queued or running
	DeliveryDone    = "done"    // its intake job completed
	DeliveryFailed  = "failed"  // its intake job died; a redelivery is processed again
)

// Job states.
const (
	JobAvailable = "available" // waiting for RunAfter, then for a worker
	JobLeased    = "leased"    // held by LeaseOwner until LeaseExpiresAt
	JobCompleted = "completed"
	JobDead      = "dead" // out of attempts, or failed for good; LastError says why
	JobCancelled = "cancelled"
)

// Run statuses. How a completed run ended is its Conclusion (success, failure, cancelled,
// timed_out, neutral), which the store does not interpret.
const (
	RunQueued    = "queued"
	RunWaiting   = "waiting" // for its concurrency group
	RunRunning   = "running"
	RunCompleted = "completed"
)

// DefaultMaxAttempts applies when a job is enqueued with MaxAttempts 0.
const DefaultMaxAttempts = 3

// Delivery is one accepted event: a GitHub webhook (ID is X-GitHub-Delivery), or a dispatch or
// schedule event recorded the same way with an id the caller makes unique.
type Delivery struct {
	ID         string
	Event      string // e.g. "push", "pull_request", "dispatch", "schedule"
	Body       []byte
	ReceivedAt time.Time
	// Filled by the store.
	Status     string // DeliveryPending, DeliveryDone or DeliveryFailed
	Error      string // why the last processing failed
	Generation int    // 1 at first; +1 each time a failed delivery is accepted again
	UpdatedAt  time.Time
}

// Spend is the metered model spend of one repository's routine on one UTC day.
type Spend struct {
	Day     string  `json:"day"`
	Repo    string  `json:"repo"`
	Routine string  `json:"routine"`
	USD     float64 `json:"usd"`
}

// Run is one routine run planned from one event.
type Run struct {
	ID string // made by the store when empty
	// Key makes CreateRun idempotent (e.g. delivery id + "/" + routine): a retried intake finds the
	// run it created before. Defaults to ID.
	Key              string
	Repo             string // owner/name
	Routine          string
	SHA              string
	EventKind        string
	DeliveryID       string
	ConcurrencyGroup string
	Plan             []byte // JSON, opaque to the store
	Status           string // RunQueued when empty
	Conclusion       string
	Error            string
	CreatedAt        time.Time
	UpdatedAt        time.Time
	StartedAt        time.Time
	FinishedAt       time.Time
	// RerunOf is the run this one re-runs (same delivery, same commit); "" for a first run.
	RerunOf string
}

// RunFilter selects runs for ListRuns; empty fields match everything.
type RunFilter struct {
	Repo       string
	Routine    string
	Status     string
	DeliveryID string
	// Event is the trigger: the run's event kind (push, pull_request, schedule, dispatch, …).
	Event string
	// FinishedAfter keeps the runs that finished at or after it (zero: any, finished or not).
	FinishedAfter time.Time
	// Before keeps the runs listed after this position, that is older ones: the cursor of the
	// previous page's last row (zero: from the newest).
	Before RunCursor
	Limit  int // 100 when 0
}

// Job is one unit of queued work, leased by one worker at a time.
type Job struct {
	ID   int64
	Kind string
	// Key dedupes enqueues: a second Enqueue with the same key returns the first job. Random when
	// empty.
	Key            string
	Payload        []byte
	RunID          string // the run it belongs to, if any
	DeliveryID     string // a job with a delivery marks it done or failed when it ends
	MaxAttempts    int
	RunAfter       time.Time // now when zero
	State          string
	Attempts       int // leases taken so far
	LeaseOwner     string
	LeaseExpiresAt time.Time
	Result         []byte // JSON given to Complete
	LastError      string
	LogPath        string // relative to the data dir
	CreatedAt      time.Time
	UpdatedAt      time.Time
	FinishedAt     time.Time
}

// JobFilter selects jobs for ListJobs; empty fields match everything.
type JobFilter struct {
	RunID string
	Kind  string
	State string
	Limit int // 1000 when 0
}

// Store is everything the daemon persists. All methods are safe for concurrent use, and several
// Store values (in one process or in several daemons) may share one database.
type Store interface {
	// RecordDelivery commits a delivery and, in the same transaction, enqueues its KindIntake
	// job, so it is durable before the webhook is acknowledged. fresh is false for a duplicate
	// id (nothing is enqueued), except that a delivery whose processing failed is accepted again
	// and re-enqueued (fresh true).
	RecordDelivery(ctx context.Context, d Delivery) (fresh bool, err error)
	// GetDelivery returns a delivery with its body.
	GetDelivery(ctx context.Context, id string) (Delivery, error)

	// CreateRun inserts a run unless one with the same Key exists; either way it returns the
	// stored run, and created says which.
	CreateRun(ctx context.Context, r Run) (stored Run, created bool, err error)
	// UpdateRun writes the mutable fields (Status, Conclusion, Error, Plan, SHA, StartedAt,
	// FinishedAt) of run r.ID. Completing a run releases the concurrency groups it holds.
	UpdateRun(ctx context.Context, r Run) error
	// Rerun starts a completed run over: in one transaction the run is queued again (its
	// conclusion, error and times cleared), its finished jobs are available again with their
	// attempts reset, and its saved files (an earlier result) are deleted. It returns how many
	// jobs it made available; ErrIllegalTransition when the run is not completed.
	Rerun(ctx context.Context, runID string) (jobs int, err error)
	GetRun(ctx context.Context, id string) (Run, error)
	// ListRuns returns runs newest first; Plan is left out (use GetRun).
	ListRuns(ctx context.Context, f RunFilter) ([]Run, error)
	// SetRunJobState records the state (RunJobRunning, RunJobFinished) of agent job job of run
	// runID, as the worker running the run starts and ends it; a cancel request stays.
	SetRunJobState(ctx context.Context, runID, job, state string) error
	// CancelRunJob records a request to cancel agent job job of run runID (which need not have
	// started) and returns the job's record: a job already finished, or already asked to
	// cancel, is left as it was, and the record says so.
	CancelRunJob(ctx context.Context, runID, job, reason string) (RunJob, error)
	// RunJobs returns the recorded agent jobs of a run, by job.
	RunJobs(ctx context.Context, runID string) ([]RunJob, error)
	// CountRunning counts the runs of a repo in status RunRunning ("" counts all repos).
	CountRunning(ctx context.Context, repo string) (int, error)

	// Enqueue adds a job unless one with the same Key exists; it returns the job's id and
	// whether it was added.
	Enqueue(ctx context.Context, j Job) (id int64, fresh bool, err error)
	// Lease claims up to n available jobs of the given kinds (any kind when empty) whose RunAfter
	// has come, for owner until now+ttl. Each lease counts one attempt. No two owners ever hold
	// the same job at once.
	Lease(ctx context.Context, owner string, kinds []string, n int, ttl time.Duration) ([]Job, error)
	// Heartbeat extends the leases owner still holds to now+ttl and returns the ids it no longer
	// holds (the worker must stop those).
	Heartbeat(ctx context.Context, ids []int64, owner string, ttl time.Duration) (lost []int64, err error)
	// Complete records a leased job's result (JSON) and ends it; ErrLeaseLost if owner no longer
	// holds it.
	Complete(ctx context.Context, id int64, owner string, result []byte) error
	// Fail records an attempt's error. The job is retried after retryAfter while attempts remain;
	// otherwise, or when retryAfter < 0 (a permanent failure), it is dead with reason.
	Fail(ctx context.Context, id int64, owner string, reason string, retryAfter time.Duration) (dead bool, err error)
	// Requeue gives a leased job back without consuming its attempt, available again after
	// `after`: 0 on graceful shutdown, a short delay for a run that must wait for its
	// concurrency group or its repository's limit (its worker is free meanwhile).
	Requeue(ctx context.Context, id int64, owner string, after time.Duration) error
	// RescueExpired makes the jobs whose lease expired before now available again, or dead with
	// "lease expired after N attempts" when none remain. It returns the jobs it changed, at most
	// 1000 a call (call again while it returns 1000). On Postgres, jobs another daemon is rescuing
	// at the same moment are skipped, not waited for.
	RescueExpired(ctx context.Context, now time.Time) ([]Job, error)
	// CancelJobs cancels the unfinished jobs of a run; a worker holding one sees ErrLeaseLost on
	// its next Heartbeat or Complete.
	CancelJobs(ctx context.Context, runID, reason string) (n int, err error)
	GetJob(ctx context.Context, id int64) (Job, error)
	ListJobs(ctx context.Context, f JobFilter) ([]Job, error)
	// SetJobLog records where a job's log file is (relative to the data dir).
	SetJobLog(ctx context.Context, id int64, path string) error
	// CountJobs counts jobs per state.
	CountJobs(ctx context.Context) (map[string]int, error)

	// AcquireGroup makes runID the holder of a concurrency group if it is free, already held by
	// runID, or held by a run that is completed or gone. Otherwise ok is false and holder names
	// the run holding it, which the caller may wait for or cancel.
	AcquireGroup(ctx context.Context, group, runID string) (ok bool, holder string, err error)
	// ReleaseGroup frees a group if runID holds it.
	ReleaseGroup(ctx context.Context, group, runID string) error

	// ClaimTick records that a routine's schedule fired for tick; true for exactly one caller
	// across all daemons sharing the database.
	ClaimTick(ctx context.Context, routineKey string, tick time.Time) (bool, error)
	// LastTick returns the latest claimed tick of a routine (zero if none), so a daemon that was
	// down fires a missed tick once rather than once per missed interval.
	LastTick(ctx context.Context, routineKey string) (time.Time, error)

	// CreateToken makes a new API token t.Name with t.Scope, expiring at t.ExpiresAt (zero:
	// never), and returns its plaintext, shown once; only its SHA-256 is stored. ErrExists if
	// the name has a token.
	CreateToken(ctx context.Context, t Token) (plaintext string, err error)
	// CheckToken returns the record of the token plaintext: ErrNotFound when it is none,
	// ErrTokenExpired (with the record) when it has expired. It records the use in LastUsedAt,
	// at most once per LastUsedEvery.
	CheckToken(ctx context.Context, plaintext string) (Token, error)
	// ListTokens returns every token's record, by name.
	ListTokens(ctx context.Context) ([]Token, error)
	// RevokeToken deletes name's token; ErrNotFound if there is none.
	RevokeToken(ctx context.Context, name string) error

	// CreateSession signs a browser in: it stores the session (only its id's SHA-256) and
	// returns its id, shown once. A session made from a token (TokenName) ends when the token
	// is revoked or expires; ErrNotFound when there is no such token.
	CreateSession(ctx context.Context, s Session) (id string, err error)
	// CheckSession returns the live session with that id; ErrNotFound otherwise (unknown,
	// expired, or its token revoked or expired).
	CheckSession(ctx context.Context, id string) (Session, error)
	// DeleteSession ends a session (sign-out); no error when there is none.
	DeleteSession(ctx context.Context, id string) error

	// SaveRunFile keeps one of a finished run's files (its result, report, patch, a job's log)
	// in the database, so that every daemon sharing it can serve the file, not only the one
	// that ran the run. Saving a name again replaces the file.
	SaveRunFile(ctx context.Context, runID, name string, data []byte) error
	// RunFile returns a saved file; ErrNotFound when there is none.
	RunFile(ctx context.Context, runID, name string) ([]byte, error)

	// Identity is a random id made once per database: daemons sharing the store see the same
	// one, daemons on different stores different ones.
	Identity(ctx context.Context) (string, error)
	// Key returns a random 32-byte secret named name, made once per database like Identity,
	// so every daemon sharing the store signs and checks with the same one (e.g. the run
	// pages' capability links).
	Key(ctx context.Context, name string) ([]byte, error)

	// SetDaemonAddr records the internal address (a base URL) of the daemon leasing jobs as
	// owner, replacing what it recorded before, so other daemons sharing the database can reach
	// it (a running job's live log).
	SetDaemonAddr(ctx context.Context, owner, internalURL string) error
	// DaemonAddr returns the internal address owner recorded; ErrNotFound when none.
	DaemonAddr(ctx context.Context, owner string) (string, error)

	// AddSpend adds usd of metered model spend to day (UTC, 2006-01-02), repo and routine.
	AddSpend(ctx context.Context, day, repo, routine string, usd float64) error
	// DaySpend is the spend of day and repo: of routine, or of all its routines when "".
	DaySpend(ctx context.Context, day, repo, routine string) (float64, error)
	// DaySpends lists the spend of day by repository and routine, in that order.
	DaySpends(ctx context.Context, day string) ([]Spend, error)

	// Close stops background work and closes the database.
	Close() error
}

// Option changes how Open builds a store.
type Option func(*options)

type options struct {
	now func() time.Time
}

// WithClock sets the clock used for timestamps, run-after times and lease expiry (tests).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Open opens (creating and migrating if needed) the store at dsn: "postgres://…" or
// "postgresql://…" for Postgres; "sqlite:///abs/path/runner.db", "sqlite:rel/path.db" or a plain
// file path for SQLite.
func Open(ctx context.Context, dsn string, opts ...Option) (Store, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case dsn == "":
		return nil, errors.New("open store: empty database location (want a file path or postgres://…)")
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn, o)
	case strings.HasPrefix(dsn, "sqlite://"):
		return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite://"), o)
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"), o)
	case strings.Contains(dsn, "://"):
		return nil, fmt.Errorf("open store %q: unknown scheme (want postgres:// or sqlite:// or a file path)", dsn)
	default:
		return openSQLite(ctx, dsn, o)
	}
}
