package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/agentrunner/agentrunner/proxy"
	"github.com/spf13/cobra"
)

func init() { register(newProxyCmd) }

// newProxyCmd is the egress proxy's entry point inside its container; the runner starts it
// (package egress), users do not.
func newProxyCmd(s *streams) *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the egress proxy (internal: the runner starts it in a container)",
		Long: "Proxy runs the egress proxy that enforces network allow lists and adds model API keys\n" +
			"outside the agent containers. The runner starts it in its own container for each run;\n" +
			"it is not meant to be run by hand.\n\n" +
			"It reads one JSON configuration object (listen addresses, key endpoints, jobs) from\n" +
			"--config, or from standard input with --config - (the default), then answers control\n" +
			"requests, one JSON object per line, on standard input and output; it logs JSON to\n" +
			"standard error and stops when standard input ends.",
		Hidden: true,
		Args:   argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProxy(cmd, s, configPath)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "-", "configuration file (JSON), - for standard input")
	return cmd
}

func runProxy(cmd *cobra.Command, s *streams, configPath string) error {
	log := slog.New(slog.NewJSONHandler(s.Err, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var in io.Reader = s.In
	control := json.NewDecoder(s.In)
	if configPath != "-" {
		f, err := os.Open(configPath)
		if err != nil {
			return fmt.Errorf("read the proxy configuration: %w", err)
		}
		defer f.Close()
		in = f
	}
	dec := control
	if in != s.In {
		dec = json.NewDecoder(in)
	}
	dec.DisallowUnknownFields()
	var fc proxy.FileConfig
	if err := dec.Decode(&fc); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty input")
		}
		where := configPath
		if where == "-" {
			where = "standard input"
		}
		// The decoder's message never quotes the input, so a key cannot leak through it.
		return usageError{fmt.Errorf("proxy configuration from %s: %s", where, strings.TrimPrefix(err.Error(), "json: "))}
	}
	return proxy.Serve(cmd.Context(), fc, log, control, s.Out)
}
