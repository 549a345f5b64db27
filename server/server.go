// Package server is the daemon's HTTP face: GitHub webhooks in (verified, deduplicated and
// queued before they are acknowledged) and a health endpoint. It does no work on a delivery
// beyond deciding whether it is worth queueing: a worker takes queued deliveries to the
// pipeline, so GitHub gets its answer in milliseconds whatever the routines do.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/runner/event"
	"github.com/agentrunner/agentrunner/store"
)

// MaxWebhookBody is GitHub's own cap on a delivery: 25 MB. Anything larger is refused with 413.
const MaxWebhookBody = 25 << 20

// WebhookPath is where GitHub deliveries are accepted.
const WebhookPath = "/webhooks/github"

// Delivery is an accepted webhook as the queue stores it: ID is X-GitHub-Delivery, Event is
// X-GitHub-Event, Body the verified payload.
type Delivery = store.Delivery

// Queue durably records deliveries for the workers. RecordDelivery returns fresh=false for a
// delivery id it already holds (nothing more is queued) except that a delivery whose processing
// failed is accepted again (fresh=true), so GitHub's "redeliver" works. store.Store implements
// it; an error makes the server answer 503, so GitHub marks the delivery failed.
type Queue interface {
	RecordDelivery(ctx context.Context, d Delivery) (fresh bool, err error)
}

// Config configures a Server.
type Config struct {
	// WebhookSecret is the secret GitHub signs deliveries with. Empty refuses every delivery.
	WebhookSecret []byte
	Queue         Queue
	// MaxBodyBytes caps a delivery's body (default MaxWebhookBody).
	MaxBodyBytes int64
	// Health, when set, is consulted by /healthz (e.g. a store ping).
	Health func(ctx context.Context) error
	// Logger receives one line per refused or failed delivery; nil discards.
	Logger *slog.Logger
	// Now stamps ReceivedAt; nil is time.Now.
	Now func() time.Time
}

// Server handles the daemon's HTTP requests. It is safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Queue == nil {
		return nil, errors.New("server: no queue: webhooks must be persisted before they are acknowledged")
	}
	if len(cfg.WebhookSecret) == 0 {
		return nil, errors.New("server: no webhook secret: set the secret configured on the GitHub App or webhook")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = MaxWebhookBody
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.mux.HandleFunc("POST "+WebhookPath, s.ServeWebhook)
	s.mux.HandleFunc("GET /healthz", s.serveHealth)
	return s, nil
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler { return s.mux }

// Mux returns the server's router, so other parts of the daemon (the dispatch and read API)
// can add their routes beside the webhook.
func (s *Server) Mux() *http.ServeMux { return s.mux }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Health != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := s.cfg.Health(ctx); err != nil {
			s.log.Warn("health check failed", "err", err)
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// Webhook answers.
const (
	statusQueued    = "queued"
	statusDuplicate = "duplicate"
	statusIgnored   = "ignored"
)

// ServeWebhook handles POST /webhooks/github: signature first (401), size (413), shape (400),
// then the delivery is queued (202) or acknowledged and ignored (202); ping answers 200.
func (s *Server) ServeWebhook(w http.ResponseWriter, r *http.Request) {
	d, err := github.ReadWebhook(r, s.cfg.WebhookSecret, s.cfg.MaxBodyBytes)
	if err != nil {
		status := github.WebhookStatus(err)
		s.log.Warn("webhook refused", "status", status, "err", err, "delivery", r.Header.Get("X-GitHub-Delivery"), "remote", r.RemoteAddr)
		http.Error(w, err.Error(), status)
		return
	}
	if d.Event == event.KindPing {
		answer(w, http.StatusOK, "pong", d.DeliveryID)
		return
	}
	queue, err := Route(d.Event, d.Body)
	if err != nil {
		s.log.Warn("webhook refused", "status", http.StatusBadRequest, "err", err, "delivery", d.DeliveryID)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !queue {
		answer(w, http.StatusAccepted, statusIgnored, d.DeliveryID)
		return
	}
	fresh, err := s.cfg.Queue.RecordDelivery(r.Context(), Delivery{ID: d.DeliveryID, Event: d.Event, Body: d.Body, ReceivedAt: s.cfg.Now()})
	if err != nil {
		s.log.Error("webhook not queued", "err", err, "delivery", d.DeliveryID, "event", d.Event)
		http.Error(w, "could not queue the delivery; GitHub may redeliver it", http.StatusServiceUnavailable)
		return
	}
	if !fresh {
		answer(w, http.StatusAccepted, statusDuplicate, d.DeliveryID)
		return
	}
	answer(w, http.StatusAccepted, statusQueued, d.DeliveryID)
}

func answer(w http.ResponseWriter, code int, status, id string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	// Hand-built: the id was checked by ReadWebhook to be non-empty, and JSON-quoting it is all
	// that is needed; encoding/json would be the largest cost of a 202.
	q, _ := json.Marshal(id)
	_, _ = fmt.Fprintf(w, `{"status":%q,"delivery":%s}`+"\n", status, q)
}

// Route decides whether a verified delivery of kind is worth a run: it returns false for events
// and actions that never start a routine (they are acknowledged and dropped) and an error for a
// payload that is not a valid JSON object. Which routines run is decided later, on the
// repository's config at the event's commit.
func Route(kind string, body []byte) (queue bool, err error) {
	var action, deleted, issue, comment []byte
	err = topLevel(body, func(k []byte) bool {
		switch string(k) {
		case "action", "deleted", "issue", "comment":
			return true
		}
		return false
	}, func(k, v []byte) {
		switch string(k) {
		case "action":
			action = v
		case "deleted":
			deleted = v
		case "issue":
			issue = v
		case "comment":
			comment = v
		}
	})
	if err != nil {
		return false, fmt.Errorf("webhook %s: %w", kind, err)
	}
	act := ""
	if len(action) > 0 && action[0] == '"' {
		if err := json.Unmarshal(action, &act); err != nil {
			return false, fmt.Errorf("webhook %s: action: %w", kind, err)
		}
	}
	switch kind {
	case event.KindPush:
		return string(deleted) != "true", nil
	case event.KindPullRequest:
		// Routines choose their types (labeled, closed, ...): every action may matter.
		return act != "", nil
	case event.KindIssueComment:
		if act != "created" && act != "edited" || issue == nil || comment == nil {
			return false, nil
		}
		var is struct {
			PullRequest json.RawMessage `json:"pull_request"`
		}
		var cm struct {
			Body string `json:"body"`
		}
		if json.Unmarshal(issue, &is) != nil || json.Unmarshal(comment, &cm) != nil {
			return false, fmt.Errorf("webhook %s: issue or comment is not an object", kind)
		}
		if len(is.PullRequest) == 0 || string(is.PullRequest) == "null" {
			return false, nil
		}
		_, ok := event.ParseCommand(cm.Body)
		return ok, nil
	case event.KindCheckRun:
		return act == "rerequested" || act == "requested_action", nil
	case event.KindCheckSuite:
		return act == "rerequested", nil
	case event.KindInstallation:
		// Recorded so the daemon can track installations; it starts nothing.
		return true, nil
	}
	return false, nil
}
