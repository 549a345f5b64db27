package kube

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// busyWindow bounds how long a request the API server turned away for load is tried again.
var busyWindow = 5 * time.Minute

// whenFree calls do until the API server takes it: thousands of agents starting at once can
// exceed its in-flight limits, which it answers with 429 (client-go's own retries, ten at
// Retry-After's pace, may not outlast a burst) or a server timeout. Those are waited out with
// backoff, within busyWindow and ctx; any other error is do's.
func whenFree(ctx context.Context, do func() error) error {
	deadline := time.Now().Add(busyWindow)
	wait := 250 * time.Millisecond
	for {
		err := do()
		if err == nil || !busy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func busy(err error) bool {
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err)
}
