package event

import (
	"github.com/agentrunner/agentrunner/config"
)

// Match reports whether ev starts a routine whose `on:` block is on. When it does not, why is a
// short human reason (`branch "dev" not in branches`) that `runner exec --dry-run` prints.
func Match(on *config.Triggers, ev *Event) (ok bool, why string) {
	if on == nil || ev == nil {
		return false, "no triggers"
	}
	switch ev.Kind {
	case KindPush:
		if on.Push == nil {
			return false, "routine has no push trigger"
		}
		return true, ""
	case KindPullRequest:
		if on.PullRequest == nil {
			return false, "routine has no pull_request trigger"
		}
		return true, ""
	}
	return false, "event kind " + ev.Kind + " not handled"
}
