package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/store"
)

// maxCatchUp bounds how many missed ticks are walked to find the latest one after downtime.
const maxCatchUp = 1 << 20

// scheduleEntry is one `on.schedule` entry of a routine on a repository's default branch.
type scheduleEntry struct {
	key     string // repo/routine@cron@tz: the ClaimTick key
	repo    string
	routine string
	cron    string
	sched   cron.Schedule
	next    time.Time // cached: no tick is due before it
}

type scheduler struct {
	d *Daemon

	mu      sync.Mutex
	entries map[string][]*scheduleEntry // by repo
	dirty   map[string]bool
}

func newScheduler(d *Daemon) *scheduler {
	return &scheduler{d: d, entries: map[string][]*scheduleEntry{}, dirty: map[string]bool{}}
}

// refreshLater reloads repo's schedules on the next tick (a push to its default branch).
func (s *scheduler) refreshLater(repo string) {
	s.mu.Lock()
	s.dirty[repo] = true
	s.mu.Unlock()
}

// parseSchedule compiles a cron entry in its timezone (UTC when empty).
func parseSchedule(sc config.Schedule) (cron.Schedule, error) { return sc.Compile() }

// load reads repo's routines on its default branch and replaces its entries.
func (s *scheduler) load(ctx context.Context, repoName string) error {
	d := s.d
	repo, err := d.o.Repos.EventRepo(repoName)
	if err != nil {
		return err
	}
	sha, branch, err := d.o.Pipeline.Head(ctx, repo)
	if err != nil {
		return err
	}
	repo.DefaultBranch = branch
	cfg, err := d.o.Pipeline.Config(ctx, repo, sha)
	if err != nil {
		return err
	}
	d.hooks.learn(repoName, cfg)
	d.configs.remember(repoName, sha, branch, cfg, d.o.Now())
	var list []*scheduleEntry
	for _, r := range cfg.Routines {
		for _, sc := range r.On.Schedule {
			sched, err := parseSchedule(sc)
			if err != nil {
				d.log.Warn("schedule ignored", "repo", repoName, "routine", r.Name, "err", err)
				continue
			}
			list = append(list, &scheduleEntry{
				key:     repoName + "/" + r.Name + "@" + sc.Cron + "@" + sc.Timezone,
				repo:    repoName,
				routine: r.Name,
				cron:    sc.Cron,
				sched:   sched,
			})
		}
	}
	s.mu.Lock()
	s.entries[repoName] = list
	s.mu.Unlock()
	d.log.Info("schedules loaded", "repo", repoName, "sha", short(sha), "branch", branch, "entries", len(list))
	return nil
}

func (s *scheduler) loop(ctx context.Context) {
	for _, r := range s.d.o.Repos.Known() {
		if err := s.load(ctx, r.Name); err != nil {
			s.d.log.Warn("load schedules", "repo", r.Name, "err", err)
			s.refreshLater(r.Name)
		}
	}
	t := time.NewTicker(s.d.o.ScheduleTick)
	defer t.Stop()
	for {
		s.mu.Lock()
		var dirty []string
		for r := range s.dirty {
			dirty = append(dirty, r)
		}
		clear(s.dirty)
		s.mu.Unlock()
		for _, r := range dirty {
			if err := s.load(ctx, r); err != nil && ctx.Err() == nil {
				s.d.log.Warn("load schedules", "repo", r, "err", err)
			}
		}
		s.fireDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *scheduler) fireDue(ctx context.Context) {
	now := s.d.o.Now()
	s.mu.Lock()
	var all []*scheduleEntry
	for _, list := range s.entries {
		all = append(all, list...)
	}
	s.mu.Unlock()
	for _, e := range all {
		if ctx.Err() != nil || s.d.Draining() {
			return
		}
		if !e.next.IsZero() && now.Before(e.next) {
			continue
		}
		tick, err := s.due(ctx, e, now)
		if err != nil {
			s.d.log.Warn("schedule", "key", e.key, "err", err)
			continue
		}
		if tick.IsZero() {
			continue
		}
		if err := s.fire(ctx, e, tick); err != nil {
			s.d.log.Warn("fire schedule", "key", e.key, "tick", tick, "err", err)
			continue
		}
		e.next = e.sched.Next(tick)
	}
}

// due returns the latest tick at or before now that has not fired, or zero. A daemon that was
// down fires only the latest missed tick; one that never fired this entry starts counting at
// its own start, so a new schedule does not fire for the past.
func (s *scheduler) due(ctx context.Context, e *scheduleEntry, now time.Time) (time.Time, error) {
	last, err := s.d.o.Store.LastTick(ctx, e.key)
	if err != nil {
		return time.Time{}, err
	}
	base := last
	if base.IsZero() {
		base = s.d.started.Add(-time.Second)
	}
	next := e.sched.Next(base)
	if next.After(now) {
		e.next = next
		return time.Time{}, nil
	}
	tick := next
	for range maxCatchUp {
		n := e.sched.Next(tick)
		if n.After(now) || n.IsZero() {
			break
		}
		tick = n
	}
	return tick, nil
}

// fire records the tick's delivery under an id made from the entry and the tick, so daemons
// racing for the same tick record it once; then it claims the tick, which moves LastTick.
// Recording first means a crash in between loses nothing: the next look finds the same tick,
// the delivery is a duplicate, and the claim completes.
func (s *scheduler) fire(ctx context.Context, e *scheduleEntry, tick time.Time) error {
	sum := sha256.Sum256([]byte(e.key))
	id := "schedule-" + hex.EncodeToString(sum[:8]) + "-" + strconv.FormatInt(tick.Unix(), 10)
	body, _ := json.Marshal(envelope{Repo: e.repo, Routine: e.routine, Cron: e.cron, At: tick.UTC()})
	fresh, err := s.d.RecordDelivery(ctx, store.Delivery{ID: id, Event: EventSchedule, Body: body})
	if err != nil {
		return err
	}
	if _, err := s.d.o.Store.ClaimTick(ctx, e.key, tick); err != nil {
		return err
	}
	if fresh {
		s.d.log.Info("schedule fired", "repo", e.repo, "routine", e.routine, "cron", e.cron, "tick", tick)
	}
	return nil
}
