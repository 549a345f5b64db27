package runner

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/agentrunner/agentrunner/egress"
	"github.com/agentrunner/agentrunner/proxy"
)

// pipeHost starts the real proxy in this process, its control channel a pipe, as a pod on
// Kubernetes would dial one in: what the Egress does with a ProxyHost other than Docker.
type pipeHost struct {
	started []egress.RunSpec
	stopped int
}

func (h *pipeHost) StartProxy(ctx context.Context, spec egress.RunSpec) (*egress.Egress, error) {
	h.started = append(h.started, spec)
	daemonSide, proxySide := net.Pipe()
	go func() {
		defer proxySide.Close()
		dec := json.NewDecoder(proxySide)
		var fc proxy.FileConfig
		if dec.Decode(&fc) != nil {
			return
		}
		fc.Listen, fc.KeysListen = "127.0.0.1:0", "127.0.0.1:0"
		_ = proxy.Serve(context.Background(), fc, slog.New(slog.DiscardHandler), dec, proxySide)
	}()
	return egress.Controlled(ctx, spec, daemonSide, "10.244.0.7", func(context.Context) error { h.stopped++; return nil })
}

// With a ProxyHost (a pod on Kubernetes) and no Docker engine, a run with allow-listed agents
// gets its proxy from the host with the run's keys; a job joins it with its allow list and
// its environment points at the proxy's address; a local connector, which needs a Docker
// host for its sidecar, is not offered and says why, while the run goes on; the proxy is
// stopped at the run's end.
func TestAnEgressHostOtherThanDockerServesTheRun(t *testing.T) {
	p := routine(t, `secrets: [ANTHROPIC_API_KEY]
connectors:
  things:
    image: agentrunner/testagent:dev
    command: [/testagent, mcp-server]
agents:
  triage:
    uses: claude-code
    prompt: triage
    network: {allow: ["api.github.com:443"]}
`, "")
	host := &pipeHost{}
	e := &Egress{Host: host}
	if err := e.BeginRun(t.Context(), "run-1", RunScope{Plan: p, Secrets: map[string]string{"ANTHROPIC_API_KEY": "sk-ant-real"}}); err != nil {
		t.Fatal(err)
	}
	if len(host.started) != 1 || len(host.started[0].Keys) != 1 || host.started[0].Keys[0].Value != "sk-ant-real" {
		t.Fatalf("the host started %+v, want one proxy with the run's key", host.started)
	}
	in := p.Nodes[0].Instances[0]
	j, err := e.join(t.Context(), &Task{RunID: "run-1", Instance: in})
	if err != nil {
		t.Fatal(err)
	}
	if u := j.network.ProxyEnv["HTTPS_PROXY"]; !strings.HasSuffix(u, "@10.244.0.7:3128") || j.network.Proxy != "10.244.0.7" {
		t.Errorf("the job's proxy is %q (%s)", u, j.network.Proxy)
	}
	if len(j.unavailable) != 1 || !strings.Contains(j.unavailable[0], "things: a local connector runs as a sidecar container on a Docker host") {
		t.Errorf("unavailable connectors: %q", j.unavailable)
	}
	if !j.served["ANTHROPIC_API_KEY"] {
		t.Error("the key the proxy adds is not kept from the agent")
	}
	e.EndRun(t.Context(), "run-1")
	if host.stopped != 1 {
		t.Errorf("the proxy was stopped %d times at the run's end, want once", host.stopped)
	}
}
