package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// FileConfig is what `runner proxy` reads (as one JSON object) before it starts listening.
// The egress package writes it to the proxy container's stdin, so the keys in it are never in
// the container's environment, image or files.
type FileConfig struct {
	// Listen is the forward proxy's address (default ":3128").
	Listen string `json:"listen,omitempty"`
	// KeysListen is the key endpoints' address (default ":8081").
	KeysListen string        `json:"keys_listen,omitempty"`
	Keys       []KeyEndpoint `json:"keys,omitempty"`
	// Jobs are registered before the proxy starts; more arrive over the control channel.
	Jobs []Job `json:"jobs,omitempty"`
	// Budget caps the run's model calls in US dollars (0: none); Prices price them (the
	// defaults when empty).
	Budget float64 `json:"budget,omitempty"`
	Prices Prices  `json:"prices,omitempty"`
	// TestOnly widens the address filter and the resolver. Only a runner built with the
	// agentrunner_testonly tag accepts it; any other build refuses to start.
	TestOnly *TestOnly `json:"test_only,omitempty"`
}

// TestOnly holds the filter overrides integration tests need, because their upstreams live on
// Docker networks in private ranges.
type TestOnly struct {
	// AllowPrefixes are CIDRs the address filter lets through.
	AllowPrefixes []string `json:"allow_prefixes,omitempty"`
	// Hosts answer names before the resolver is asked (name → addresses).
	Hosts map[string][]string `json:"hosts,omitempty"`
}

// ErrTestOnly is returned by TestOnlyAllow in builds without the agentrunner_testonly tag.
var ErrTestOnly = errors.New("this runner build does not accept test-only address filter overrides (build with -tags agentrunner_testonly)")

// Request is one control-channel command, a JSON object per line.
type Request struct {
	// Op is "register" (Job), "blocked", "attempts" or "spend" (JobID), or "budget".
	Op    string `json:"op"`
	Job   *Job   `json:"job,omitempty"`
	JobID string `json:"job_id,omitempty"`
	// Budget is op budget's new cap on the run's spend in US dollars; a cap at or below what
	// is spent refuses every further call. Uncapped lifts the cap.
	Budget   float64 `json:"budget,omitempty"`
	Uncapped bool    `json:"uncapped,omitempty"`
}

// Reply answers one Request, in order, a JSON object per line. The first line the proxy
// writes, before any request, is {"ok":true,"ready":true} once it listens (or ok false and the
// error).
type Reply struct {
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`
	Ready    bool      `json:"ready,omitempty"`
	Token    string    `json:"token,omitempty"`
	Blocked  []string  `json:"blocked,omitempty"`
	Attempts []Attempt `json:"attempts,omitempty"`
	// Spend is a job's metered model calls; RunUSD the run's in all (op spend).
	Spend  *Spend  `json:"spend,omitempty"`
	RunUSD float64 `json:"run_usd,omitempty"`
}

// ServeControl answers the Requests read from r on w until r ends or ctx is done. Requests
// carry keys never; replies carry no key (a token is not a key).
func (s *Server) ServeControl(ctx context.Context, dec *json.Decoder, w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for ctx.Err() == nil {
		var req Request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read control request: %w", err)
		}
		rep := s.answer(req)
		err := enc.Encode(rep)
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			return fmt.Errorf("write control reply: %w", err)
		}
	}
	return ctx.Err()
}

func (s *Server) answer(req Request) Reply {
	switch req.Op {
	case "register":
		if req.Job == nil {
			return Reply{Error: "register: no job"}
		}
		tok, err := s.Register(*req.Job)
		if err != nil {
			return Reply{Error: err.Error()}
		}
		return Reply{OK: true, Token: tok}
	case "blocked":
		return Reply{OK: true, Blocked: s.Blocked(req.JobID)}
	case "attempts":
		return Reply{OK: true, Attempts: s.Attempts(req.JobID)}
	case "spend":
		sp, run := s.Spend(req.JobID)
		return Reply{OK: true, Spend: &sp, RunUSD: run}
	case "budget":
		s.SetBudget(req.Budget, !req.Uncapped)
		return Reply{OK: true}
	default:
		return Reply{Error: fmt.Sprintf("unknown op %q", req.Op)}
	}
}
