package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/agentrunner/agentrunner/config"
	"github.com/agentrunner/agentrunner/github"
	"github.com/agentrunner/agentrunner/store"
)

// The answers a hook call gets. They never carry an internal error (a path, git's output):
// the caller is not authenticated when most of them are given. The log has the details.
var (
	errHookBadName    = reqErr(400, "malformed repository or routine name")
	errHookUnsigned   = reqErr(401, "missing X-Hub-Signature-256 (want sha256=<hex HMAC-SHA256 of the body>)")
	errHookUnknown    = reqErr(404, "unknown routine")
	errHookNoSecret   = reqErr(403, "the routine's webhook secret is not set up on this runner")
	errHookMismatch   = reqErr(401, "signature mismatch")
	errHookNotJSON    = reqErr(400, "the body is not JSON")
	errHookRepository = reqErr(503, "the repository cannot be read now; retry later")
)

// ValidRepoName checks owner/name against GitHub's rules: the owner is 1 to 39 letters,
// digits and single hyphens, neither first nor last; the name is 1 to 100 letters, digits,
// '.', '_' and '-', and neither "." nor "..". Such a name is safe in a path, a URL and a log.
func ValidRepoName(fullName string) error {
	owner, name, ok := strings.Cut(fullName, "/")
	if !ok || !validOwner(owner) || !validName(name) {
		return fmt.Errorf("repository %q: want owner/name as GitHub allows them", fullName)
	}
	return nil
}

func validOwner(s string) bool {
	if s == "" || len(s) > 39 || s[0] == '-' || s[len(s)-1] == '-' || strings.Contains(s, "--") {
		return false
	}
	for _, c := range s {
		if !(c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func validName(s string) bool {
	if s == "" || len(s) > 100 || s == "." || s == ".." {
		return false
	}
	for _, c := range s {
		if !(c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// hookSecrets remembers, per repository, the on.webhook secret name of each routine as the
// last config the daemon read at the repository's default branch said. A hook call is
// authenticated against it before anything is fetched: an unauthenticated caller must not
// make the daemon fetch from the forge, take a mirror's lock or read a config.
//
// A repository becomes known when the daemon reads its routines at its default branch: at
// start for the repositories listed in its configuration (with schedules on), after a GitHub
// event of a repository first seen or a push to its default branch (schedules on), on a
// dispatch, and after each accepted hook call. Until then its hooks answer 404.
type hookSecrets struct {
	mu     sync.RWMutex
	byRepo map[string]map[string]string // repo → routine with on.webhook → secret name ("" = none)
}

// learn replaces what is known of repo's hook routines with cfg's.
func (h *hookSecrets) learn(repo string, cfg *config.Config) {
	m := map[string]string{}
	for _, r := range cfg.Routines {
		if r.On.Webhook != nil {
			m[r.Name] = r.On.Webhook.Secret
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byRepo == nil {
		h.byRepo = map[string]map[string]string{}
	}
	h.byRepo[repo] = m
}

// secret returns the secret name routine's hook is signed with; ok is false for a repository
// not known yet and for a routine without on.webhook.
func (h *hookSecrets) secret(repo, routine string) (name string, ok bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	name, ok = h.byRepo[repo][routine]
	return name, ok
}

// Hook accepts an external system's call for routine: body must be signed with the routine's
// on.webhook secret (a runner secret named there), as signature "sha256=<hex HMAC-SHA256>"
// (X-Hub-Signature-256). deliveryID, when the caller sends one, dedupes retries.
//
// Names are checked, then the signature against the secret the last config seen names (see
// hookSecrets), and only then is the repository fetched, its routine looked up again at the
// tip of its default branch, and the call queued. Errors are RequestErrors with generic
// messages, or ErrDraining.
func (d *Daemon) Hook(ctx context.Context, repoName, routine string, body []byte, signature, deliveryID string) (*DispatchResult, error) {
	if d.Draining() {
		return nil, ErrDraining
	}
	if ValidRepoName(repoName) != nil || !config.IsRoutineName(routine) {
		return nil, errHookBadName
	}
	if signature == "" {
		return nil, errHookUnsigned
	}
	log := d.log.With("repo", repoName, "routine", routine)
	name, ok := d.hooks.secret(repoName, routine)
	if !ok {
		log.Info("hook refused: no routine of that name with on.webhook is known (yet) for the repository")
		return nil, errHookUnknown
	}
	if err := d.verifyHook(repoName, name, body, signature); err != nil {
		log.Warn("hook refused", "err", err)
		return nil, answerOf(err)
	}
	if len(strings.TrimSpace(string(body))) > 0 && !json.Valid(body) {
		return nil, errHookNotJSON
	}
	// Authenticated: now the repository may be fetched, to run the routine at its tip.
	repo, err := d.o.Repos.EventRepo(repoName)
	if err != nil {
		log.Warn("hook: resolve the repository", "err", err)
		return nil, errHookRepository
	}
	sha, branch, err := d.o.Pipeline.Head(ctx, repo)
	if err != nil {
		log.Warn("hook: fetch the repository", "err", err)
		return nil, errHookRepository
	}
	repo.DefaultBranch = branch
	cfg, err := d.o.Pipeline.Config(ctx, repo, sha)
	if err != nil {
		log.Warn("hook: read the routines", "sha", sha, "err", err)
		return nil, errHookRepository
	}
	d.hooks.learn(repoName, cfg)
	d.configs.remember(repoName, sha, branch, cfg, d.o.Now())
	// The routine may have changed since: it must still take hooks, signed the same way.
	if now, ok := d.hooks.secret(repoName, routine); !ok {
		log.Info("hook refused: the routine has no on.webhook at the tip any more", "sha", sha)
		return nil, errHookUnknown
	} else if now != name {
		if err := d.verifyHook(repoName, now, body, signature); err != nil {
			log.Warn("hook refused after the routine's secret changed", "err", err)
			return nil, answerOf(err)
		}
	}
	id := "hook-" + randomHex(12)
	if deliveryID != "" {
		sum := sha256.Sum256([]byte(repoName + "\x00" + routine + "\x00" + deliveryID))
		id = "hook-" + hex.EncodeToString(sum[:12])
	}
	env := envelope{Repo: repoName, Routine: routine, SHA: sha, Branch: branch}
	if len(strings.TrimSpace(string(body))) > 0 {
		env.Payload = json.RawMessage(body)
	}
	b, _ := json.Marshal(env)
	if _, err := d.RecordDelivery(ctx, store.Delivery{ID: id, Event: EventWebhook, Body: b}); err != nil {
		if errors.Is(err, ErrDraining) {
			return nil, err
		}
		log.Error("hook: record the delivery", "err", err)
		return nil, reqErr(503, "the call could not be recorded; retry later")
	}
	return &DispatchResult{DeliveryID: id, RunID: RunID(id, routine), Repo: repoName, Routine: routine, SHA: sha, Branch: branch}, nil
}

// answerOf is the generic answer err wraps, without err's details.
func answerOf(err error) error {
	var re *RequestError
	if errors.As(err, &re) {
		return re
	}
	return errHookMismatch
}

// verifyHook checks signature with the secret called secretName in repoName's secrets. The
// error is one of the generic answers; what went wrong is in its wrapped cause for the log.
func (d *Daemon) verifyHook(repoName, secretName string, body []byte, signature string) error {
	if secretName == "" {
		return fmt.Errorf("the routine sets no on.webhook.secret, and unsigned calls are refused: %w", errHookNoSecret)
	}
	secrets, err := d.o.Repos.Secrets(repoName)
	if err != nil {
		return fmt.Errorf("read the repository's secrets: %v: %w", err, errHookNoSecret)
	}
	key := secrets[secretName]
	if key == "" {
		return fmt.Errorf("the runner holds no secret %s for the repository: %w", secretName, errHookNoSecret)
	}
	// The same scheme as GitHub's deliveries: one implementation checks both.
	if err := github.VerifySignature([]byte(key), body, signature); err != nil {
		return fmt.Errorf("%v: %w", err, errHookMismatch)
	}
	return nil
}
