package config

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// Compile makes the schedule the daemon fires: its cron expression (ParseCron) in its time
// zone, UTC when empty. The daemon's scheduler and the routines view (next ticks) both use it,
// so what a page announces is what fires.
func (s Schedule) Compile() (cron.Schedule, error) {
	tz := s.Timezone
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("timezone %q: %w", tz, err)
	}
	c, err := ParseCron(s.Cron)
	if err != nil {
		return nil, fmt.Errorf("cron %q: %w", s.Cron, err)
	}
	if spec, ok := c.(*cron.SpecSchedule); ok {
		spec.Location = loc
	}
	return c, nil
}
