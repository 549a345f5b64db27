// Package daemon is the long-running service behind `runner serve`: it turns accepted
// deliveries (GitHub webhooks, dispatches, generic webhooks, schedule ticks), all committed to
// the store before they are acknowledged, into runs, and runs them from the store's durable
// queue with workers that lease jobs, heartbeat their leases and survive crashes.
//
// The flow: an intake job (one per delivery, enqueued by store.RecordDelivery) plans the event
// and creates one run per matching routine, each with its own run job; a run job waits for its
// concurrency group and the per-repo limit, then runs the engine. Every step is idempotent, so
// a job that is run twice (after a crash, or a lease that expired) has the same effects once:
// run ids are derived from the delivery and the routine, and the GitHub reporters find their
// check run and pull request again by that id.
//
// The daemon knows nothing about HTTP: server handlers call Dispatch and Hook, and the GitHub
// webhook handler calls the store directly. It knows nothing about GitHub either: reporters
// come from a factory the caller provides.
package daemon
