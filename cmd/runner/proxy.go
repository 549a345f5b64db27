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
	"github.com/agentrunner/agentrunner/sandbox/kube/carry"
	"github.com/spf13/cobra"
)

func init() { register(newProxyCmd) }

// newProxyCmd is the egress proxy's entry point inside its container; the runner starts it
// (package egress), users do not.
func newProxyCmd(s *streams) *cobra.Command {
	var configPath string
	var dial bool
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the egress proxy (internal: the runner starts it in a container)",
		Long: "Proxy runs the egress proxy that enforces network allow lists and adds model API keys\n" +
			"outside the agent containers. The runner starts it in its own container for each run;\n" +
			"it is not meant to be run by hand.\n\n" +
			"It reads one JSON configuration object (listen addresses, key endpoints, jobs) from\n" +
			"--config, or from standard input with --config - (the default), then answers control\n" +
			"requests, one JSON object per line, on standard input and output; it logs JSON to\n" +
			"standard error and stops when standard input ends.\n\n" +
			"With --dial (its pod on Kubernetes) the configuration and the control requests come\n" +
			"over a connection it opens to the runner's exchange instead: $" + carry.EnvURL + ",\n" +
			"with the token in $" + carry.EnvToken + ", secured by TLS to the certificate in\n" +
			"$" + carry.EnvControlCert + " and the proof in $" + carry.EnvControlProof + "; it stops when\n" +
			"that connection ends.",
		Hidden: true,
		Args:   argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProxy(cmd, s, configPath, dial)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "-", "configuration file (JSON), - for standard input")
	cmd.Flags().BoolVar(&dial, "dial", false, "take the configuration and control requests from the runner's exchange (a proxy pod on Kubernetes)")
	return cmd
}

func runProxy(cmd *cobra.Command, s *streams, configPath string, dial bool) error {
	log := slog.New(slog.NewJSONHandler(s.Err, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var in io.Reader = s.In
	var out io.Writer = s.Out
	if dial {
		if configPath != "-" {
			return usageError{errors.New("--dial takes the configuration from the exchange; drop --config")}
		}
		base, token, cert, proof := os.Getenv(carry.EnvURL), os.Getenv(carry.EnvToken), os.Getenv(carry.EnvControlCert), os.Getenv(carry.EnvControlProof)
		if base == "" || token == "" || cert == "" || proof == "" {
			return usageError{fmt.Errorf("--dial needs $%s, $%s, $%s and $%s (the runner sets them in the proxy's pod)",
				carry.EnvURL, carry.EnvToken, carry.EnvControlCert, carry.EnvControlProof)}
		}
		conn, err := carry.DialControl(cmd.Context(), base, token, []byte(cert), proof)
		if err != nil {
			return err
		}
		defer conn.Close()
		in, out = conn, conn
	}
	control := json.NewDecoder(in)
	if configPath != "-" {
		f, err := os.Open(configPath)
		if err != nil {
			return fmt.Errorf("read the proxy configuration: %w", err)
		}
		defer f.Close()
		in = f
	}
	dec := control
	if configPath != "-" {
		dec = json.NewDecoder(in)
	}
	dec.DisallowUnknownFields()
	var fc proxy.FileConfig
	if err := dec.Decode(&fc); err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty input")
		}
		where := configPath
		switch {
		case dial:
			where = "the exchange"
		case where == "-":
			where = "standard input"
		}
		// The decoder's message never quotes the input, so a key cannot leak through it.
		return usageError{fmt.Errorf("proxy configuration from %s: %s", where, strings.TrimPrefix(err.Error(), "json: "))}
	}
	return proxy.Serve(cmd.Context(), fc, log, control, out)
}
