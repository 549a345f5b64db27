package proxy

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Attempt is one connection or request the proxy decided on.
type Attempt struct {
	Time time.Time `json:"time"`
	// Job is the job id, "" when the request carried no known token.
	Job string `json:"job"`
	// Kind is CONNECT, an HTTP method, or KEY (a key endpoint).
	Kind string `json:"kind"`
	// Dest is host:port as the agent asked for it.
	Dest    string `json:"dest"`
	Allowed bool   `json:"allowed"`
	// Reason says why it was refused.
	Reason string `json:"reason,omitempty"`
	// Addr is the address dialled, for allowed attempts.
	Addr string `json:"addr,omitempty"`
	// Client is the agent's address on the internal network.
	Client string `json:"client,omitempty"`
}

type jobLog struct {
	attempts []Attempt // the last max attempts
	blocked  []string  // distinct refused destinations with reasons, in first-seen order
	seen     map[string]bool
}

type recorder struct {
	mu   sync.Mutex
	max  int
	jobs map[string]*jobLog
}

func (r *recorder) add(log *slog.Logger, a Attempt) {
	a.Time = time.Now()
	level := slog.LevelInfo
	if !a.Allowed {
		level = slog.LevelWarn
	}
	log.Log(context.Background(), level, "egress", "job", a.Job, "kind", a.Kind, "dest", a.Dest,
		"allowed", a.Allowed, "reason", a.Reason, "addr", a.Addr, "client", a.Client)
	r.mu.Lock()
	defer r.mu.Unlock()
	jl := r.jobs[a.Job]
	if jl == nil {
		jl = &jobLog{seen: map[string]bool{}}
		r.jobs[a.Job] = jl
	}
	if len(jl.attempts) >= r.max {
		copy(jl.attempts, jl.attempts[1:])
		jl.attempts = jl.attempts[:len(jl.attempts)-1]
	}
	jl.attempts = append(jl.attempts, a)
	// A call refused for the budget is not a blocked destination: Spend reports it.
	if !a.Allowed && a.Kind != KindBudget {
		b := a.Dest + " (" + a.Reason + ")"
		if !jl.seen[b] {
			jl.seen[b] = true
			jl.blocked = append(jl.blocked, b)
		}
	}
}

// Attempts returns the job's recent attempts, oldest first ("" for requests without a known
// token).
func (s *Server) Attempts(jobID string) []Attempt {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	if jl := s.rec.jobs[jobID]; jl != nil {
		return append([]Attempt(nil), jl.attempts...)
	}
	return nil
}

// Blocked returns the job's distinct refused destinations, each "host:port (reason)", in the
// order first seen.
func (s *Server) Blocked(jobID string) []string {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	if jl := s.rec.jobs[jobID]; jl != nil {
		return append([]string(nil), jl.blocked...)
	}
	return nil
}
