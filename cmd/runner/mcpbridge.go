package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/agentrunner/agentrunner/mcpbridge"
	"github.com/spf13/cobra"
)

func init() { register(newMCPBridgeCmd) }

// newMCPBridgeCmd is a local connector's entry point inside its sidecar container; the runner
// starts it (package connectors), users do not.
func newMCPBridgeCmd(s *streams) *cobra.Command {
	return &cobra.Command{
		Use:   "mcp-bridge",
		Short: "Serve a stdio MCP server over streamable HTTP (internal: the runner starts it in a connector's sidecar)",
		Long: "mcp-bridge starts a stdio MCP server as its child and offers the child's tools (those on\n" +
			"the connector's allow list) over streamable HTTP at /<token>/mcp. The runner starts it\n" +
			"in each local connector's sidecar container; it is not meant to be run by hand.\n\n" +
			"It reads one JSON configuration object (command, environment, token, allowed tools)\n" +
			"from standard input, writes one JSON line to standard output once it serves, logs JSON\n" +
			"to standard error, and stops when standard input ends.",
		Hidden: true,
		Args:   argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewJSONHandler(s.Err, &slog.HandlerOptions{Level: slog.LevelInfo}))
			dec := json.NewDecoder(s.In)
			dec.DisallowUnknownFields()
			var cfg mcpbridge.Config
			if err := dec.Decode(&cfg); err != nil {
				if errors.Is(err, io.EOF) {
					err = errors.New("empty input")
				}
				// The decoder's message never quotes the input, so a secret cannot leak through it.
				return usageError{fmt.Errorf("mcp-bridge configuration from standard input: %s", strings.TrimPrefix(err.Error(), "json: "))}
			}
			// The end of standard input is the runner's signal to stop.
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			go func() {
				_, _ = io.Copy(io.Discard, dec.Buffered())
				_, _ = io.Copy(io.Discard, s.In)
				cancel()
			}()
			return mcpbridge.Serve(ctx, cfg, log, s.Out)
		},
	}
}
