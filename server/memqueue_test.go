package server_test

import (
	"context"
	"sync"

	"github.com/agentrunner/agentrunner/server"
	"github.com/agentrunner/agentrunner/store"
)

// memQueue is an in-memory server.Queue with the store's dedupe semantics, for tests only: a
// known id is a duplicate unless its processing failed.
type memQueue struct {
	mu     sync.Mutex
	status map[string]string
	items  []server.Delivery
	err    error
}

func newMemQueue() *memQueue { return &memQueue{status: map[string]string{}} }

func (q *memQueue) RecordDelivery(_ context.Context, d server.Delivery) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return false, q.err
	}
	if st, ok := q.status[d.ID]; ok && st != store.DeliveryFailed {
		return false, nil
	}
	q.status[d.ID] = store.DeliveryPending
	q.items = append(q.items, d)
	return true, nil
}

// take removes and returns everything queued so far.
func (q *memQueue) take() []server.Delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	q.items = nil
	return out
}

func (q *memQueue) finish(id string, failed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if failed {
		q.status[id] = store.DeliveryFailed
	} else {
		q.status[id] = store.DeliveryDone
	}
}

func (q *memQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

var _ server.Queue = (*memQueue)(nil)
var _ server.Queue = store.Store(nil)
