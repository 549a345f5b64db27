// Package store keeps everything agentrunner must not lose: webhook deliveries (and the dispatch
// and schedule events that are recorded the same way), runs, the durable job queue with its
// leases, schedule ticks, concurrency groups, API tokens (hashed, each with a scope and an
// optional expiry) and the locations of job logs (the log files themselves live under the data
// dir). It knows nothing about GitHub, Docker or plans: a plan is opaque JSON here.
//
// Two implementations sit behind one [Store] interface: an embedded SQLite database (pure Go,
// modernc.org/sqlite, the default) and Postgres (pgx) for several daemons sharing one database.
// Both use the same SQL; the schema is migrated at [Open] from embedded, versioned files.
//
// Why a home-made queue and not River: River (riverqueue/river) owns the worker loop and its own
// job table, while the daemon needs explicit leases it can fence, that is Lease(owner, n, ttl),
// heartbeats that extend a lease, completion that fails with ErrLeaseLost once a lease was
// rescued and taken by another worker, and a requeue at shutdown that consumes no attempt.
// River rescues stuck jobs only after a fixed horizon (an hour by default) with no per-job
// heartbeat, and its SQLite driver is still described as alpha by its authors. The delivery
// intake must also insert the delivery and enqueue its job in one transaction of our own schema.
// The queue here is small (one table, a few statements): FOR UPDATE SKIP LOCKED on Postgres, a
// single writer connection on SQLite, and the tests run the same suite against both.
//
// Durability on SQLite: WAL with synchronous=FULL, so a delivery acknowledged by RecordDelivery
// survives a power loss, not only a crash of the process. Concurrent RecordDelivery calls are
// group-committed (one transaction and one fsync for all the calls waiting at that moment), which
// is how SQLite reaches thousands of acknowledged deliveries a second on two cores.
package store
