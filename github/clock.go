package github

import (
	"context"
	"time"
)

// Clock is the time source for retry waits, token expiry and JWT timestamps. Tests inject a fake
// so a 60 s rate-limit wait takes no real time.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx is done, returning ctx's error in the latter case.
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits d, or returns early with ctx.Err() when ctx is done.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
