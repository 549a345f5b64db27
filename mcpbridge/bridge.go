// Package mcpbridge serves a stdio MCP server over streamable HTTP: the process a local
// connector's sidecar container runs (`runner mcp-bridge`). It starts the server's command as
// its child, speaks MCP to it over the child's stdin and stdout with the official Go SDK, and
// offers the child's tools again to agents at http://<sidecar>:<port>/<token>/mcp.
//
// The bridge, not the agent's CLI, enforces the connector's tool allow list: a tool outside it
// is neither listed nor callable, whatever a (possibly prompt-injected) agent sends. The
// connector's secrets reach the bridge on its standard input and go only into the child's
// environment, so they are in neither the sidecar's configuration nor any agent container.
//
// Only tools are bridged: resources, prompts and sampling of the child are not offered.
package mcpbridge

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Config is what the runner sends the bridge, one JSON object on its standard input.
type Config struct {
	// Name is the connector's name, reported to agents as the server's name.
	Name string `json:"name"`
	// Listen is the TCP address to serve on (":8080").
	Listen string `json:"listen"`
	// Token is the secret first path segment: agents reach /<Token>/mcp, every other path is
	// not found. At least 16 characters.
	Token string `json:"token"`
	// Command is the stdio MCP server's argv.
	Command []string `json:"command"`
	// Env is added to the child's environment (the connector's env and secrets); the rest is
	// the bridge's own (the image's PATH and so on).
	Env map[string]string `json:"env,omitempty"`
	// Tools, when set, are the only tools offered; empty offers every tool of the child.
	Tools []string `json:"tools,omitempty"`
	// StartTimeout bounds the child's initialization and tool listing (default 30s).
	StartTimeout time.Duration `json:"start_timeout,omitempty"`
}

// Ready is the bridge's one line on its standard output once it serves, or why it cannot.
type Ready struct {
	OK    bool     `json:"ok"`
	Error string   `json:"error,omitempty"`
	Tools []string `json:"tools,omitempty"` // the tools offered
	// Missing are allow-listed tools the child does not have.
	Missing []string `json:"missing,omitempty"`
}

// Path is where agents reach the bridge below its token.
const Path = "/mcp"

// maxBody bounds one request from an agent; MCP messages are small.
const maxBody = 4 << 20

// Serve runs the bridge until ctx is done or the child ends. It writes one Ready line to out.
func Serve(ctx context.Context, cfg Config, log *slog.Logger, out io.Writer) error {
	b, ln, err := start(ctx, cfg, log)
	if err != nil {
		_ = json.NewEncoder(out).Encode(Ready{Error: err.Error()})
		return err
	}
	defer b.session.Close()
	srv := &http.Server{Handler: b.Handler(), ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- b.session.Wait() }()
	log.Info("mcp bridge ready", "connector", cfg.Name, "listen", ln.Addr().String(), "tools", b.offered)
	if err := json.NewEncoder(out).Encode(Ready{OK: true, Tools: b.offered, Missing: b.missing}); err != nil {
		return fmt.Errorf("write ready: %w", err)
	}
	var end error
	select {
	case <-ctx.Done():
	case end = <-errc:
		if errors.Is(end, http.ErrServerClosed) {
			end = nil
		} else if end == nil {
			end = errors.New("the MCP server's process ended")
		}
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	return end
}

// Bridge is a running child session and the server that re-offers its tools.
type Bridge struct {
	cfg     Config
	log     *slog.Logger
	session *mcp.ClientSession
	server  *mcp.Server
	allowed map[string]bool // nil: every tool
	offered []string
	missing []string
}

func start(ctx context.Context, cfg Config, log *slog.Logger) (*Bridge, net.Listener, error) {
	if cfg.Listen == "" {
		cfg.Listen = ":8080"
	}
	b, err := New(ctx, cfg, log)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		b.session.Close()
		return nil, nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	return b, ln, nil
}

// New starts cfg.Command, initializes an MCP session with it and lists its tools.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Bridge, error) {
	if len(cfg.Token) < 16 {
		return nil, errors.New("mcp bridge: the token must be at least 16 characters")
	}
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, errors.New("mcp bridge: no command to run")
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
	cmd.Env = os.Environ()
	keys := make([]string, 0, len(cfg.Env))
	for k := range cfg.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+cfg.Env[k])
	}
	cmd.Stderr = &logWriter{log: log}
	b := &Bridge{cfg: cfg, log: log}
	if len(cfg.Tools) > 0 {
		b.allowed = map[string]bool{}
		for _, t := range cfg.Tools {
			b.allowed[t] = true
		}
	}
	sctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "agentrunner-mcp-bridge", Version: "1"}, nil)
	session, err := client.Connect(sctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return nil, fmt.Errorf("start the MCP server %q: %w", strings.Join(cfg.Command, " "), err)
	}
	b.session = session
	b.server = mcp.NewServer(&mcp.Implementation{Name: cfg.Name, Version: "1"}, &mcp.ServerOptions{Logger: log})
	b.server.AddReceivingMiddleware(b.refuse)
	have := map[string]bool{}
	for t, err := range session.Tools(sctx, nil) {
		if err != nil {
			session.Close()
			return nil, fmt.Errorf("list the tools of the MCP server %q: %w", strings.Join(cfg.Command, " "), err)
		}
		have[t.Name] = true
		if b.allowed != nil && !b.allowed[t.Name] {
			continue
		}
		if err := b.add(t); err != nil {
			log.Warn("mcp bridge: tool not offered", "tool", t.Name, "err", err)
			continue
		}
		b.offered = append(b.offered, t.Name)
	}
	for _, t := range cfg.Tools {
		if !have[t] {
			b.missing = append(b.missing, t)
		}
	}
	return b, nil
}

// add offers one of the child's tools. The SDK panics on a tool it finds malformed (a schema
// that is not an object); the child is not trusted to be well-formed, so that is an error.
func (b *Bridge) add(t *mcp.Tool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed tool: %v", r)
		}
	}()
	name := t.Name
	b.server.AddTool(t, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return b.session.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: req.Params.Arguments})
	})
	return nil
}

// refuse answers a call of a tool outside the allow list with an error that says so, before
// the SDK would answer "unknown tool": an agent (or its user reading the log) learns why.
func (b *Bridge) refuse(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method == "tools/call" && b.allowed != nil {
			if p, ok := req.GetParams().(*mcp.CallToolParamsRaw); ok && !b.allowed[p.Name] {
				b.log.Warn("mcp bridge: tool call refused", "connector", b.cfg.Name, "tool", p.Name)
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams,
					Message: fmt.Sprintf("agentrunner: tool %q is not in the allow list of connector %s (%s)",
						p.Name, b.cfg.Name, strings.Join(slices.Sorted(maps.Keys(b.allowed)), ", "))}
			}
		}
		return next(ctx, method, req)
	}
}

// Offered returns the tools the bridge offers.
func (b *Bridge) Offered() []string { return b.offered }

// Close ends the child's session (and with it the child).
func (b *Bridge) Close() error { return b.session.Close() }

// Handler serves the streamable-HTTP MCP endpoint at /<token>/mcp.
func (b *Bridge) Handler() http.Handler {
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return b.server },
		&mcp.StreamableHTTPOptions{Logger: b.log})
	want := "/" + b.cfg.Token + Path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.URL.Path), []byte(want)) != 1 {
			http.NotFound(w, r)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		mcpHandler.ServeHTTP(w, r)
	})
}

// logWriter turns the child's stderr into log lines.
type logWriter struct {
	log  *slog.Logger
	part []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.part = append(w.part, p...)
	for {
		i := slices.Index(w.part, '\n')
		if i < 0 {
			break
		}
		w.log.Info("mcp server: " + strings.TrimRight(string(w.part[:i]), "\r"))
		w.part = w.part[i+1:]
	}
	if len(w.part) > 64<<10 {
		w.log.Info("mcp server: " + string(w.part))
		w.part = w.part[:0]
	}
	return len(p), nil
}
