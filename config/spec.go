package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // timezones must load the same on every runner, with or without /usr/share/zoneinfo

	"github.com/agentrunner/agentrunner/preset"
	"github.com/agentrunner/agentrunner/runner/event/pattern"
	"gopkg.in/yaml.v3"
)

// The key tables of the format, one per mapping. The decoder and Schema both read them.

// ptrField decodes a nested object into a newly allocated pointer, positioned at its key.
// A key with no value (`push:`) yields an empty object: react to every event of that kind.
func ptrField[T, U any](key string, o *object[U], p func(*T) **U, pos func(*U) *Pos) field[T] {
	return field[T]{key: key, doc: o.doc,
		schema: func(g *schemaGen) map[string]any {
			return map[string]any{"oneOf": []any{map[string]any{"type": "null"}, g.ref(o)}}
		},
		decode: func(d *decoder, k, v *yaml.Node, t *T) {
			u := new(U)
			*pos(u) = d.pos(k)
			o.decode(d, k, v, u, label{what: o.what}, nil)
			*p(t) = u
		}}
}

func checkGlobItem(what string) func(d *decoder, n *yaml.Node, s string) {
	return func(d *decoder, n *yaml.Node, s string) {
		// The matcher's own compiler decides, so validation and matching can never disagree.
		if _, err := pattern.Compile(s); err != nil {
			var pe *pattern.Error
			if errors.As(err, &pe) {
				d.errorf(n, "%s pattern %q is not valid: %s (at character %d)", what, s, pe.Msg, pe.Offset+1)
				return
			}
			d.errorf(n, "%s pattern %q is not valid: %v", what, s, err)
		}
	}
}

func checkEnvItem(what string) func(d *decoder, n *yaml.Node, s string) {
	return func(d *decoder, n *yaml.Node, s string) {
		if !isEnvName(s) {
			d.errorf(n, "%s: %q is not a valid name (letters, digits and _, not starting with a digit; like ANTHROPIC_API_KEY)", what, s)
		}
	}
}

func checkTypes(what string, known []string) func(d *decoder, n *yaml.Node, s string) {
	return func(d *decoder, n *yaml.Node, s string) {
		for _, k := range known {
			if s == k {
				return
			}
		}
		d.errorf(n, "%s: unknown activity type %q%s", what, s, didYouMean(s, known))
	}
}

func typesField[T any](known []string, what string, p func(*T) *[]string) field[T] {
	f := listField("types", "Activity types that start the routine.", false, p, checkTypes(what, known))
	f.schema = func(*schemaGen) map[string]any {
		return map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": toAny(known)}}
	}
	return f
}

var pushObj = newObject("on.push", "push",
	"Run on pushes. Filters use GitHub Actions pattern syntax; an empty block matches every push.",
	listField("branches", "Branch patterns to run on.", false, func(t *PushTrigger) *[]string { return &t.Branches }, checkGlobItem("branches")),
	listField("branches-ignore", "Branch patterns to skip.", false, func(t *PushTrigger) *[]string { return &t.BranchesIgnore }, checkGlobItem("branches-ignore")),
	listField("tags", "Tag patterns to run on.", false, func(t *PushTrigger) *[]string { return &t.Tags }, checkGlobItem("tags")),
	listField("tags-ignore", "Tag patterns to skip.", false, func(t *PushTrigger) *[]string { return &t.TagsIgnore }, checkGlobItem("tags-ignore")),
	listField("paths", "Run only when a changed file matches.", false, func(t *PushTrigger) *[]string { return &t.Paths }, checkGlobItem("paths")),
	listField("paths-ignore", "Skip when every changed file matches.", false, func(t *PushTrigger) *[]string { return &t.PathsIgnore }, checkGlobItem("paths-ignore")),
)

var pullRequestObj = newObject("on.pull_request", "pull_request",
	"Run on pull requests; branches match the base branch. An empty block means opened, synchronize and reopened on any branch.",
	typesField(PullRequestTypes, "pull_request types", func(t *PullRequestTrigger) *[]string { return &t.Types }),
	listField("branches", "Base branch patterns to run on.", false, func(t *PullRequestTrigger) *[]string { return &t.Branches }, checkGlobItem("branches")),
	listField("branches-ignore", "Base branch patterns to skip.", false, func(t *PullRequestTrigger) *[]string { return &t.BranchesIgnore }, checkGlobItem("branches-ignore")),
	listField("paths", "Run only when a changed file matches.", false, func(t *PullRequestTrigger) *[]string { return &t.Paths }, checkGlobItem("paths")),
	listField("paths-ignore", "Skip when every changed file matches.", false, func(t *PullRequestTrigger) *[]string { return &t.PathsIgnore }, checkGlobItem("paths-ignore")),
	boolField("fork-secrets", "Hand secrets to runs of pull requests from forks (off by default: fork code could steal them).", func(t *PullRequestTrigger) *bool { return &t.ForkSecrets }),
)

var issueCommentObj = newObject("on.issue_comment", "issue_comment",
	"Run when someone comments `/agents run <routine>` on a pull request.",
	typesField(IssueCommentTypes, "issue_comment types", func(t *IssueCommentTrigger) *[]string { return &t.Types }),
)

var scheduleObj = newObject("schedule entry", "schedule",
	"One cron schedule.",
	field[Schedule]{key: "cron", required: true,
		doc:    `Five fields: minute hour day-of-month month day-of-week ("0 3 * * 1-5"), or @hourly, @daily, @weekly, @monthly, @every 2h.`,
		schema: func(*schemaGen) map[string]any { return map[string]any{"type": "string", "minLength": 1} },
		decode: func(d *decoder, _, v *yaml.Node, t *Schedule) {
			s, ok := d.str(v, "cron")
			if !ok {
				return
			}
			t.Cron = s
			if _, err := ParseCron(s); err != nil {
				d.errorf(v, "cron %q is not valid: %v; write 5 fields, minute hour day-of-month month day-of-week, like \"0 3 * * 1-5\", or a shortcut like @daily", s, err)
			}
		}},
	field[Schedule]{key: "timezone",
		doc:    "IANA time zone name, like Europe/Berlin; UTC when unset.",
		schema: func(*schemaGen) map[string]any { return map[string]any{"type": "string"} },
		decode: func(d *decoder, _, v *yaml.Node, t *Schedule) {
			s, ok := d.str(v, "timezone")
			if !ok {
				return
			}
			t.Timezone = s
			if s == "" || s == "Local" {
				d.errorf(v, "timezone %q is not allowed: name a zone like UTC or Europe/Berlin, so every runner agrees", s)
			} else if !knownZone(s) {
				d.errorf(v, "unknown timezone %q; use an IANA name like UTC, Europe/Berlin or America/New_York", s)
			}
		}},
)

var inputObj = newObject("dispatch input", "input",
	"One input of a dispatch, available as ${{ inputs.<name> }}.",
	strField("description", "What the input means.", func(t *Input) *string { return &t.Description }),
	boolField("required", "A dispatch without this input is refused.", func(t *Input) *bool { return &t.Required }),
	textField("default", "The value when the dispatch does not give one.", func(t *Input) *string { return &t.Default }),
	field[Input]{key: "options", doc: "The allowed values.",
		schema: func(*schemaGen) map[string]any {
			return map[string]any{"type": "array", "minItems": 1, "items": map[string]any{"type": []any{"string", "number", "boolean"}}}
		},
		decode: func(d *decoder, _, v *yaml.Node, t *Input) {
			items, ok := d.seq(v, "options", false)
			if !ok {
				return
			}
			for i, it := range items {
				if s, ok := d.textItem(it, "options", i); ok {
					t.Options = append(t.Options, s)
				}
			}
		}},
)

var dispatchObj = newObject("on.dispatch", "dispatch",
	"Allow runs through the API and `runner dispatch`, with typed inputs.",
	field[DispatchTrigger]{key: "inputs", doc: "Inputs by name.",
		schema: func(g *schemaGen) map[string]any {
			return map[string]any{"type": "object",
				"propertyNames":        map[string]any{"pattern": identPattern},
				"additionalProperties": map[string]any{"oneOf": []any{map[string]any{"type": "null"}, g.ref(inputObj)}}}
		},
		decode: func(d *decoder, _, v *yaml.Node, t *DispatchTrigger) {
			es, ok := d.mapping(v, "inputs", true)
			if !ok {
				return
			}
			for p := range es.all() {
				in := &Input{Pos: d.pos(p.k), Name: p.k.Value}
				if !isIdent(p.k.Value) {
					d.errorf(p.k, "input name %q is not valid: use letters, digits, _ and -, starting with a letter", p.k.Value)
				}
				inputObj.decode(d, p.k, p.v, in, label{"input", p.k.Value}, nil)
				t.Inputs = append(t.Inputs, in)
			}
		}},
)

var webhookObj = newObject("on.webhook", "webhook",
	"Accept an external system's HMAC-signed JSON at /hooks/{owner}/{repo}/{routine}.",
	strField("secret", "Name of the runner secret holding the HMAC key.", func(t *WebhookTrigger) *string { return &t.Secret }),
)

// eventNames are the keys of `on:`, also accepted in the short forms `on: push` and `on: [push, dispatch]`.
var eventNames = []string{"push", "pull_request", "issue_comment", "schedule", "dispatch", "webhook"}

var triggersObj = newObject("on", "on",
	"The events that start the routine.",
	ptrField("push", pushObj, func(t *Triggers) **PushTrigger { return &t.Push }, func(u *PushTrigger) *Pos { return &u.Pos }),
	ptrField("pull_request", pullRequestObj, func(t *Triggers) **PullRequestTrigger { return &t.PullRequest }, func(u *PullRequestTrigger) *Pos { return &u.Pos }),
	ptrField("issue_comment", issueCommentObj, func(t *Triggers) **IssueCommentTrigger { return &t.IssueComment }, func(u *IssueCommentTrigger) *Pos { return &u.Pos }),
	field[Triggers]{key: "schedule", doc: "Cron schedules.",
		schema: func(g *schemaGen) map[string]any {
			return map[string]any{"type": "array", "minItems": 1, "items": g.ref(scheduleObj)}
		},
		decode: func(d *decoder, k, v *yaml.Node, t *Triggers) {
			r := d.resolve(v)
			if r == nil || r.Kind != yaml.SequenceNode {
				d.errorf(v, "schedule must be a list of cron entries, got %s; write:\n  schedule:\n    - cron: \"0 3 * * *\"", describe(r))
				return
			}
			if len(r.Content) == 0 {
				d.errorf(v, "schedule is empty; add an entry like - cron: \"0 3 * * *\", or remove it")
			}
			for _, it := range r.Content {
				s := Schedule{Pos: d.pos(it)}
				scheduleObj.decode(d, it, it, &s, label{what: "schedule entry"}, nil)
				t.Schedule = append(t.Schedule, s)
			}
		}},
	ptrField("dispatch", dispatchObj, func(t *Triggers) **DispatchTrigger { return &t.Dispatch }, func(u *DispatchTrigger) *Pos { return &u.Pos }),
	ptrField("webhook", webhookObj, func(t *Triggers) **WebhookTrigger { return &t.Webhook }, func(u *WebhookTrigger) *Pos { return &u.Pos }),
)

// decodeOn accepts the `on:` block and its short forms.
func decodeOn(d *decoder, k, v *yaml.Node, t *Triggers) {
	r := d.resolve(v)
	if r == nil || r.Kind == yaml.MappingNode || isNull(r) {
		if isNull(r) {
			d.errorf(k, "on is empty; name at least one event: %s", strings.Join(eventNames, ", "))
			return
		}
		triggersObj.decode(d, k, v, t, label{what: "on"}, nil)
		return
	}
	items, ok := d.seq(v, "on", true)
	if !ok {
		return
	}
	for _, it := range items {
		s, ok := d.str(it, "on")
		if !ok {
			continue
		}
		p := d.pos(it)
		switch s {
		case "push":
			t.Push = &PushTrigger{Pos: p}
		case "pull_request":
			t.PullRequest = &PullRequestTrigger{Pos: p}
		case "issue_comment":
			t.IssueComment = &IssueCommentTrigger{Pos: p}
		case "dispatch":
			t.Dispatch = &DispatchTrigger{Pos: p}
		case "webhook":
			t.Webhook = &WebhookTrigger{Pos: p}
		case "schedule":
			d.errorf(it, "schedule needs a cron expression; write on: {schedule: [{cron: \"0 3 * * *\"}]}")
		default:
			d.errorf(it, "unknown event %q%s", s, didYouMean(s, eventNames))
		}
	}
}

var concurrencyObj = newObject("concurrency", "concurrency",
	"Runs in the same group never overlap; a newer run waits, or cancels the older one.",
	field[Concurrency]{key: "group", required: true, doc: "The group key; may hold ${{ }} expressions.",
		schema: func(*schemaGen) map[string]any { return map[string]any{"type": "string", "minLength": 1} },
		decode: func(d *decoder, _, v *yaml.Node, t *Concurrency) {
			if s, ok := d.text(v, "group"); ok {
				t.Group = s
			}
		}},
	boolField("cancel-in-progress", "Cancel the older run instead of waiting for it.", func(t *Concurrency) *bool { return &t.CancelInProgress }),
)

func concurrencyField() field[Routine] {
	return field[Routine]{key: "concurrency", doc: concurrencyObj.doc,
		schema: func(g *schemaGen) map[string]any {
			return map[string]any{"oneOf": []any{map[string]any{"type": "string", "minLength": 1}, g.ref(concurrencyObj)}}
		},
		decode: func(d *decoder, k, v *yaml.Node, t *Routine) {
			c := &Concurrency{Pos: d.pos(k)}
			if r := d.resolve(v); r != nil && r.Kind == yaml.ScalarNode && r.Tag == "!!str" {
				c.Group = r.Value
			} else {
				concurrencyObj.decode(d, k, v, c, label{what: "concurrency"}, nil)
			}
			if strings.TrimSpace(c.Group) == "" {
				d.errorf(v, "concurrency group is empty; name one, like \"deploy\" or \"review-${{ event.pull_request.number }}\"")
			}
			t.Concurrency = c
		}}
}

// dollarsField is an amount of US dollars, more than 0.
func dollarsField[T any](key, doc string, p func(*T) *float64) field[T] {
	return field[T]{key: key, doc: doc,
		schema: func(*schemaGen) map[string]any { return map[string]any{"type": "number", "exclusiveMinimum": 0} },
		decode: func(d *decoder, _, v *yaml.Node, t *T) {
			if f, ok := d.number(v, key); ok {
				if f <= 0 {
					d.errorf(v, "%s must be an amount of US dollars more than 0, like 5 or 0.50, got %v", key, f)
					return
				}
				*p(t) = f
			}
		}}
}

var budgetObj = newObject("budget", "budget",
	"Caps on what the run's model calls cost, in US dollars, metered by the egress proxy from the APIs' own usage (agents behind it: network allow lists). Past a cap, model calls are refused and the job ends budget_exceeded.",
	dollarsField("run", "Most one run may spend.", func(t *Budget) *float64 { return &t.Run }),
	dollarsField("day", "Most the routine's runs may spend in one UTC day, counted across every daemon on the database.", func(t *Budget) *float64 { return &t.Day }),
)

var resourcesObj = newObject("resources", "resources",
	"Container limits.",
	field[Resources]{key: "cpus", doc: "CPUs, fractions allowed (0.5).",
		schema: func(*schemaGen) map[string]any { return map[string]any{"type": "number", "exclusiveMinimum": 0} },
		decode: func(d *decoder, _, v *yaml.Node, t *Resources) {
			if f, ok := d.number(v, "cpus"); ok {
				if f <= 0 {
					d.errorf(v, "cpus must be more than 0, got %v", f)
					return
				}
				t.CPUs = f
			}
		}},
	field[Resources]{key: "memory", doc: "Memory limit: 512m, 2g, 1.5g, or bytes.",
		schema: func(*schemaGen) map[string]any {
			return map[string]any{"oneOf": []any{
				map[string]any{"type": "integer", "minimum": MinMemory},
				map[string]any{"type": "string", "pattern": sizePattern}}}
		},
		decode: func(d *decoder, _, v *yaml.Node, t *Resources) {
			s, ok := d.size(v, "memory")
			switch {
			case !ok:
			case s < MinMemory:
				d.errorf(v, "memory %s (%s bytes) is below Docker's minimum of 6m; a bare number is bytes, so write a size like 512m or 2g", v.Value, strconv.FormatInt(s, 10))
			case HostMemory() > 0 && s > HostMemory():
				d.errorf(v, "memory %s is more than this machine's %s; the container could never use it: set at most %s", v.Value, FormatSize(HostMemory()), FormatSize(HostMemory()))
			default:
				t.Memory = s
			}
		}},
	field[Resources]{key: "pids", doc: "Maximum processes in the container.",
		schema: func(*schemaGen) map[string]any { return map[string]any{"type": "integer", "minimum": 1} },
		decode: func(d *decoder, _, v *yaml.Node, t *Resources) {
			if i, ok := d.integer(v, "pids", 1); ok {
				t.Pids = int64(i)
			}
		}},
	sizeField("disk", "Disk the agent may write into /workspace and its output directory: 500m, 2g (the runner's default, 2g unless its runner.yaml says otherwise). Over it the agent is stopped: outcome disk_limit.",
		func(t *Resources) *int64 { return &t.Disk }),
)

var limitsObj = newObject("limits", "limits",
	"Bounds on what an agent leaves behind. Over them its changes are refused whole: the job fails with \"changes too large\" and keeps no patch.",
	sizeField("changed-file", "Largest one changed file may be: 10m (the runner's default), 1g.",
		func(t *Limits) *int64 { return &t.ChangedFile }),
	sizeField("patch", "Largest the agent's patch may be: 50m (the runner's default), 1g.",
		func(t *Limits) *int64 { return &t.Patch }),
)

// sizeField is a byte size written like 512m or 2g (or a number of bytes).
func sizeField[T any](key, doc string, ptr func(*T) *int64) field[T] {
	return field[T]{key: key, doc: doc,
		schema: func(*schemaGen) map[string]any {
			return map[string]any{"oneOf": []any{
				map[string]any{"type": "integer", "minimum": 1},
				map[string]any{"type": "string", "pattern": sizePattern}}}
		},
		decode: func(d *decoder, k, v *yaml.Node, t *T) {
			if s, ok := d.size(v, k.Value); ok {
				*ptr(t) = s
			}
		}}
}

var networkAllowObj = newObject("network", "network-allow",
	"Egress only to these host:port pairs, through the runner's proxy.",
	listField("allow", `Entries like "api.anthropic.com:443" or "*.github.com:443".`, false,
		func(t *Network) *[]string { return &t.Allow },
		func(d *decoder, n *yaml.Node, s string) {
			if err := checkHostPort(s); err != nil {
				d.errorf(n, "network.allow: %v", err)
			}
		}),
)

func init() { networkAllowObj.fields[0].required = true }

func decodeNetwork(d *decoder, k, v *yaml.Node) *Network {
	n := &Network{Pos: d.pos(k)}
	r := d.resolve(v)
	if r != nil && r.Kind == yaml.MappingNode {
		n.Mode = NetworkAllow
		networkAllowObj.decode(d, k, v, n, label{what: "network"}, nil)
		if _, ok := d.key(n, "allow"); ok && len(n.Allow) == 0 {
			d.errorf(v, "network.allow is empty; list host:port entries, or write `network: none`")
		}
		return n
	}
	s, ok := d.str(v, "network")
	if !ok {
		return nil
	}
	switch s {
	case NetworkNone, NetworkOpen:
		n.Mode = s
	default:
		d.errorf(v, "network must be none, open, or {allow: [host:port, ...]}, got %q%s", s, suggestOnly(s, []string{NetworkNone, NetworkOpen}))
		return nil
	}
	return n
}

func networkSchema(g *schemaGen) map[string]any {
	return map[string]any{"oneOf": []any{
		map[string]any{"type": "string", "enum": []any{NetworkNone, NetworkOpen}},
		g.ref(networkAllowObj)}}
}

var pullPolicies = []string{PullNever, PullIfMissing, PullAlways}

var defaultsObj = newObject("defaults", "defaults",
	"Settings merged into every agent that does not set them.",
	strField("image", "Container image for agents without `image:`.", func(t *AgentDefaults) *string { return &t.Image }),
	enumField("pull-policy", "When to pull the image: never, if-missing (default), always.", pullPolicies, func(t *AgentDefaults) *string { return &t.PullPolicy }),
	durationField("timeout", "Time limit of one agent instance, like 30m (default) or 1h30m.", func(t *AgentDefaults) *time.Duration { return &t.Timeout }),
	objField("resources", resourcesObj, func(t *AgentDefaults) *Resources { return &t.Resources }),
	objField("limits", limitsObj, func(t *AgentDefaults) *Limits { return &t.Limits }),
	field[AgentDefaults]{key: "network", doc: "Egress: none (default), open, or {allow: [host:port]}.",
		schema: networkSchema,
		decode: func(d *decoder, k, v *yaml.Node, t *AgentDefaults) { t.Network = decodeNetwork(d, k, v) }},
	textField("user", "User (name or uid[:gid]) the agent runs as.", func(t *AgentDefaults) *string { return &t.User }),
)

var prObj = newObject("publish.pull-request", "publish-pull-request",
	"Open (or update) one pull request with the run's consolidated changes.",
	strField("title", "Title; may hold ${{ }} expressions. Defaults to the routine name.", func(t *PullRequest) *string { return &t.Title }),
	strField("body", "Body (markdown); the agents' reports are appended.", func(t *PullRequest) *string { return &t.Body }),
	boolField("draft", "Open it as a draft.", func(t *PullRequest) *bool { return &t.Draft }),
	strField("branch", "Key of the branch agents/<routine>/<key>; may hold ${{ }} expressions.", func(t *PullRequest) *string { return &t.Branch }),
	listField("labels", "Labels to add.", false, func(t *PullRequest) *[]string { return &t.Labels }, nil),
)

var publishObj = newObject("publish", "publish",
	"What a run reports back.",
	boolField("check", "One check run per routine run (default true).", func(t *Publish) *bool { return &t.Check }),
	ptrField("pull-request", prObj, func(t *Publish) **PullRequest { return &t.PullRequest }, func(u *PullRequest) *Pos { return &u.Pos }),
	boolField("comment", "On pull request events, one comment edited in place.", func(t *Publish) *bool { return &t.Comment }),
)

const identPattern = `^[A-Za-z_][A-Za-z0-9_-]*$`
const exprPattern = `^\s*\$\{\{.*\}\}\s*$`

var agentObj = newObject("agent", "agent",
	"One sub-agent: a preset (uses) or a command, run in its own container on its own git workspace.",
	field[Agent]{key: "uses", doc: "Preset: " + strings.Join(preset.Names(), ", ") + ".",
		schema: func(*schemaGen) map[string]any {
			return map[string]any{"type": "string", "enum": toAny(preset.Names())}
		},
		decode: func(d *decoder, _, v *yaml.Node, t *Agent) {
			if s, ok := d.str(v, "uses"); ok {
				t.Uses = s
				if _, known := preset.Get(s); !known {
					d.errorf(v, "unknown preset %q (for any other tool use `command: [argv...]`)%s", s, didYouMean(s, preset.Names()))
				}
			}
		}},
	field[Agent]{key: "with", doc: "Options of the preset.",
		schema: func(*schemaGen) map[string]any { return map[string]any{"type": "object"} },
		decode: func(d *decoder, _, v *yaml.Node, t *Agent) {
			r := d.resolve(v)
			if r == nil || r.Kind != yaml.MappingNode {
				d.errorf(v, "with must be a mapping of preset options, got %s", describe(r))
				return
			}
			if m, ok := d.value(v, 0); ok {
				t.With, _ = m.(map[string]any)
			}
		}},
	argvField("command", "Argv to run instead of a preset, like [make, test]. Never a shell string.", func(t *Agent) *[]string { return &t.Command }),
	strField("prompt", "The task; may hold ${{ }} expressions. In $AGENT_PROMPT and $AGENT_OUTPUT_DIR/prompt.md.", func(t *Agent) *string { return &t.Prompt }),
	strField("image", "Container image (default: defaults.image).", func(t *Agent) *string { return &t.Image }),
	enumField("pull-policy", "When to pull the image: never, if-missing (default), always.", pullPolicies, func(t *Agent) *string { return &t.PullPolicy }),
	envField("env", "Environment variables.", func(t *Agent) *map[string]string { return &t.Env }),
	listField("secrets", "Routine secrets this agent receives as environment variables.", false, func(t *Agent) *[]string { return &t.Secrets }, checkEnvItem("secrets")),
	connectorsField("MCP servers this agent may use besides the routine's connectors, by name: {url: ...} for a remote one, {image: ...} for a local stdio one run beside the run. An agent with connectors is on the run's internal network: network none becomes an allow list with nothing outside, and open is refused.",
		func(t *Agent) *[]*Connector { return &t.Connectors }),
	listField("needs", "Agents that must finish first.", true, func(t *Agent) *[]string { return &t.Needs }, nil),
	textField("if", "Run only when this expression is true; default success().", func(t *Agent) *string { return &t.If }),
	field[Agent]{key: "matrix", doc: "Fan out: axis: [values] or axis: ${{ expr }}, plus include/exclude; or one ${{ expr }} yielding a list of objects.",
		schema: matrixSchema,
		decode: func(d *decoder, k, v *yaml.Node, t *Agent) { t.Matrix = decodeMatrix(d, k, v) }},
	intField("max-parallel", "Maximum instances running at once.", 1, func(t *Agent) *int { return &t.MaxParallel }),
	boolField("fail-fast", "Cancel the other instances when one fails.", func(t *Agent) *bool { return &t.FailFast }),
	boolField("continue-on-error", "A failure of this agent does not fail the run.", func(t *Agent) *bool { return &t.ContinueOnError }),
	intField("replicas", "Independent runs of the same task, for cross-checking.", 1, func(t *Agent) *int { return &t.Replicas }),
	intField("quorum", "Replicas that must agree (on vote) for the agent to succeed.", 1, func(t *Agent) *int { return &t.Quorum }),
	strField("vote", "The outputs key the replicas vote on.", func(t *Agent) *string { return &t.Vote }),
	strField("judge", "An agent that decides between the replicas instead of a vote.", func(t *Agent) *string { return &t.Judge }),
	listField("outputs", "Keys the agent writes to $AGENT_OUTPUT_DIR/outputs.json.", false, func(t *Agent) *[]string { return &t.Outputs },
		func(d *decoder, n *yaml.Node, s string) {
			if !isIdent(s) {
				d.errorf(n, "output name %q is not valid: use letters, digits, _ and -, starting with a letter", s)
			}
		}),
	enumField("changes", "keep: collect this agent's diff for the pull request; discard (default).", []string{ChangesKeep, ChangesDiscard}, func(t *Agent) *string { return &t.Changes }),
	durationField("timeout", "Time limit of one instance, like 30m or 1h30m.", func(t *Agent) *time.Duration { return &t.Timeout }),
	objField("resources", resourcesObj, func(t *Agent) *Resources { return &t.Resources }),
	objField("limits", limitsObj, func(t *Agent) *Limits { return &t.Limits }),
	field[Agent]{key: "network", doc: "Egress: none (default), open, or {allow: [host:port]}. With connectors: not open, and none means the run's internal network (the connectors) with nothing outside.",
		schema: networkSchema,
		decode: func(d *decoder, k, v *yaml.Node, t *Agent) {
			if n := decodeNetwork(d, k, v); n != nil {
				t.Network = *n
			}
		}},
	textField("user", "User (name or uid[:gid]) the agent runs as.", func(t *Agent) *string { return &t.User }),
	field[Agent]{key: "orchestrate", doc: orchestrateObj.doc,
		schema: func(g *schemaGen) map[string]any {
			return map[string]any{"oneOf": []any{map[string]any{"type": "boolean"}, g.ref(orchestrateObj)}}
		},
		decode: decodeOrchestrate},
)

var orchestrateObj = newObject("orchestrate", "orchestrate",
	"This agent writes a workflow ($AGENT_OUTPUT_DIR/workflow.yaml, the .agents format without on: and secrets:) that the runner runs as part of the run, within this envelope. true: the default envelope.",
	listField("images", "Images the generated agents may use; default: the orchestrator's own.", false, func(t *Orchestrate) *[]string { return &t.Images }, nil),
	intField("max-agents", "Most instances the generated workflow may run in all (default 100).", 1, func(t *Orchestrate) *int { return &t.MaxAgents }),
	intField("max-instances", "Most instances of one generated agent, matrix × replicas (default 50).", 1, func(t *Orchestrate) *int { return &t.MaxInstances }),
	intField("max-depth", "Levels of orchestration: 1 (default) lets the generated workflow hold no orchestrator of its own.", 1, func(t *Orchestrate) *int { return &t.MaxDepth }),
	durationField("timeout", "Wall-clock budget of the whole generated workflow (default 1h).", func(t *Orchestrate) *time.Duration { return &t.Timeout }),
	intField("retries", "Attempts the orchestrator gets to fix a workflow that does not load, with its errors (default 2).", 0, func(t *Orchestrate) *int { return &t.Retries }),
)

// decodeOrchestrate reads `orchestrate: true` (the default envelope), `false`, or the envelope.
func decodeOrchestrate(d *decoder, k, v *yaml.Node, t *Agent) {
	r := d.resolve(v)
	if r != nil && r.Kind == yaml.ScalarNode && r.Tag == "!!bool" {
		if b, ok := d.boolean(v, "orchestrate"); ok && b {
			t.Orchestrate = &Orchestrate{Pos: d.pos(k), Retries: -1}
		}
		return
	}
	o := &Orchestrate{Pos: d.pos(k), Retries: -1}
	orchestrateObj.decode(d, k, v, o, label{what: "orchestrate"}, nil)
	t.Orchestrate = o
}

func matrixSchema(*schemaGen) map[string]any {
	expr := map[string]any{"type": "string", "pattern": exprPattern}
	list := map[string]any{"type": "array", "items": map[string]any{"type": "object"}}
	return map[string]any{"oneOf": []any{
		expr,
		map[string]any{"type": "object", "minProperties": 1,
			"properties": map[string]any{"include": list, "exclude": list},
			"additionalProperties": map[string]any{"oneOf": []any{
				map[string]any{"type": "array", "minItems": 1}, expr}}},
	}}
}

func decodeMatrix(d *decoder, k, v *yaml.Node) *Matrix {
	m := &Matrix{Pos: d.pos(k)}
	r := d.resolve(v)
	if r != nil && r.Kind == yaml.ScalarNode && r.Tag == "!!str" {
		if !isExpr(r.Value) {
			d.errorf(v, "matrix must be a mapping of axes (os: [linux, mac]) or one ${{ }} expression, got %s", describe(r))
			return nil
		}
		m.Expr = r.Value
		return m
	}
	es, ok := d.mapping(v, "matrix", false)
	if !ok {
		return nil
	}
	if es.len() == 0 {
		d.errorf(v, "matrix is empty; add an axis like os: [linux, mac]")
	}
	for p := range es.all() {
		switch name := p.k.Value; name {
		case "include", "exclude":
			items, ok := d.seq(p.v, "matrix."+name, false)
			if !ok {
				continue
			}
			for _, it := range items {
				if ri := d.resolve(it); ri == nil || ri.Kind != yaml.MappingNode {
					d.errorf(it, "matrix.%s entries must be mappings of axis: value, got %s", name, describe(ri))
					continue
				}
				val, ok := d.value(it, 1)
				if !ok {
					continue
				}
				if name == "include" {
					m.Include = append(m.Include, val.(map[string]any))
				} else {
					m.Exclude = append(m.Exclude, val.(map[string]any))
				}
			}
		default:
			if !isIdent(name) {
				d.errorf(p.k, "matrix axis name %q is not valid: use letters, digits, _ and -, starting with a letter", name)
			}
			ax := MatrixAxis{Pos: d.pos(p.k), Name: name}
			rv := d.resolve(p.v)
			switch {
			case rv != nil && rv.Kind == yaml.SequenceNode:
				if len(rv.Content) == 0 {
					d.errorf(p.v, "matrix axis %q is empty, so the agent would never run; give it values or remove it", name)
				} else {
					ax.Values = make([]any, 0, len(rv.Content))
				}
				for _, it := range rv.Content {
					if val, ok := d.value(it, 1); ok {
						ax.Values = append(ax.Values, val)
					}
				}
			case rv != nil && rv.Kind == yaml.ScalarNode && rv.Tag == "!!str" && isExpr(rv.Value):
				ax.Expr = rv.Value
			default:
				d.errorf(p.v, "matrix axis %q must be a list of values or one ${{ }} expression, got %s", name, describe(rv))
				continue
			}
			if m.Axes == nil {
				m.Axes = make([]MatrixAxis, 0, es.len()) // every key but include and exclude is an axis
			}
			m.Axes = append(m.Axes, ax)
		}
	}
	if len(m.Axes) == 0 && len(m.Include) == 0 && es.len() > 0 {
		d.errorf(v, "matrix has no axis and no include, so the agent would never run")
	}
	return m
}

var agentsSchema = func(g *schemaGen) map[string]any {
	return map[string]any{"type": "object", "minProperties": 1,
		"propertyNames":        map[string]any{"pattern": identPattern},
		"additionalProperties": g.ref(agentObj)}
}

var routineObj = newObject("routine", "routine",
	"One routine: triggers, defaults, agents and what to publish.",
	strField("name", "Routine name; defaults to the file name without extension.", func(t *Routine) *string { return &t.Name }),
	strField("description", "What the routine does.", func(t *Routine) *string { return &t.Description }),
	field[Routine]{key: "on", doc: "The events that start the routine: a mapping, or an event name or list of names.",
		schema: func(g *schemaGen) map[string]any {
			names := map[string]any{"type": "string", "enum": toAny([]string{"push", "pull_request", "issue_comment", "dispatch", "webhook"})}
			return map[string]any{"oneOf": []any{names, map[string]any{"type": "array", "items": names}, g.ref(triggersObj)}}
		},
		decode: func(d *decoder, k, v *yaml.Node, t *Routine) { decodeOn(d, k, v, &t.On) }},
	concurrencyField(),
	envField("env", "Environment variables of every agent.", func(t *Routine) *map[string]string { return &t.Env }),
	listField("secrets", "Names of the runner secrets this routine may use; values never live in the repository.", false, func(t *Routine) *[]string { return &t.Secrets }, checkEnvItem("secrets")),
	connectorsField("MCP servers every agent of the routine may use, by name: {url: ...} for a remote one, {image: ...} for a local stdio one run beside the run. Agents' own connectors add to these.",
		func(t *Routine) *[]*Connector { return &t.Connectors }),
	objField("defaults", defaultsObj, func(t *Routine) *AgentDefaults { return &t.Defaults }),
	field[Routine]{key: "agents", required: true, doc: "The agents by name, in file order.",
		schema: agentsSchema,
		decode: decodeAgents},
	objField("publish", publishObj, func(t *Routine) *Publish { return &t.Publish }),
	intField("max-fan-out", "Cap on the instances of one agent (matrix × replicas); default 256.", 1, func(t *Routine) *int { return &t.MaxFanOut }),
	ptrField("budget", budgetObj, func(t *Routine) **Budget { return &t.Budget }, func(u *Budget) *Pos { return &u.Pos }),
)

func decodeAgents(d *decoder, k, v *yaml.Node, t *Routine) {
	es, ok := d.mapping(v, "agents", true)
	if !ok {
		return
	}
	if es.len() == 0 {
		d.errorf(k, "agents is empty; a routine needs at least one agent, indented under agents:")
	} else {
		t.Agents = make([]*Agent, 0, es.len())
	}
	for p := range es.all() {
		name := p.k.Value
		a := &Agent{Pos: d.pos(p.k), Name: name}
		r := d.resolve(p.v)
		switch {
		case isNull(r):
			d.errorf(p.k, "agent %q has no settings; indent its keys (uses:, prompt:, ...) under its name", name)
		case r.Kind != yaml.MappingNode:
			if _, isKey := agentObj.index[name]; isKey {
				d.errorf(p.k, "%q is an agent setting, but here it sits directly under agents: and reads as an agent's name; indent it under the agent's name", name)
			} else {
				d.errorf(p.v, "agent %q must be a mapping of settings (uses:, prompt:, ...), got %s", name, describe(r))
			}
		default:
			if !isIdent(name) {
				d.errorf(p.k, "agent name %q is not valid: use letters, digits, _ and -, starting with a letter", name)
			}
			agentObj.decode(d, p.k, p.v, a, label{"agent", name}, agentKeyHint)
		}
		t.Agents = append(t.Agents, a)
	}
}

// agentKeyHint explains a routine-level key written inside an agent.
func agentKeyHint(key string) string {
	if routineKeys[key] {
		return fmt.Sprintf("%q is a routine setting; move it to the top level of the file (no indentation)", key)
	}
	return ""
}

// routineKeys is filled in init: agentKeyHint cannot read routineObj directly, which
// (through the agents field) reads agentKeyHint.
var routineKeys = map[string]bool{}

func init() {
	for k := range routineObj.index {
		routineKeys[k] = true
	}
}

// routineKeyHint explains an agent-level or trigger key written at the top level.
func routineKeyHint(key string) string {
	if _, ok := agentObj.index[key]; ok {
		return fmt.Sprintf("%q is an agent setting; indent it under an agent's name in agents:", key)
	}
	if _, ok := triggersObj.index[key]; ok {
		return fmt.Sprintf("%q is an event; indent it under on:", key)
	}
	return ""
}

// zones caches time zone lookups: each LoadLocation reads the zone database again.
var zones sync.Map // name → bool

func knownZone(name string) bool {
	if ok, hit := zones.Load(name); hit {
		return ok.(bool)
	}
	_, err := time.LoadLocation(name)
	zones.Store(name, err == nil)
	return err == nil
}
