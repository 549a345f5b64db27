package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Serve runs the proxy described by fc until control ends (its controller closed it: the run
// is over) or ctx is done. It writes the ready Reply to out once both listeners are bound, then
// answers control Requests on out. It returns nil on a clean end.
func Serve(ctx context.Context, fc FileConfig, log *slog.Logger, control *json.Decoder, out io.Writer) error {
	srv, proxyLn, keysLn, err := setup(fc, log)
	if err != nil {
		_ = json.NewEncoder(out).Encode(Reply{Error: err.Error()})
		return err
	}
	defer proxyLn.Close()
	defer keysLn.Close()
	servers := []*http.Server{
		{Handler: srv.ProxyHandler(), ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)},
		{Handler: srv.KeysHandler(), ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)},
	}
	errc := make(chan error, 3)
	go func() { errc <- servers[0].Serve(proxyLn) }()
	go func() { errc <- servers[1].Serve(keysLn) }()
	log.Info("proxy ready", "listen", proxyLn.Addr().String(), "keys_listen", keysLn.Addr().String(), "jobs", len(fc.Jobs))
	if err := json.NewEncoder(out).Encode(Reply{OK: true, Ready: true}); err != nil {
		return fmt.Errorf("write ready: %w", err)
	}
	go func() { errc <- srv.ServeControl(ctx, control, out) }()
	var end error
	select {
	case <-ctx.Done():
	case end = <-errc:
		if errors.Is(end, http.ErrServerClosed) {
			end = nil
		}
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(shut)
	}
	log.Info("proxy stopped")
	return end
}

func setup(fc FileConfig, log *slog.Logger) (*Server, net.Listener, net.Listener, error) {
	cfg := Config{Logger: log, Keys: fc.Keys, Budget: fc.Budget, Prices: fc.Prices}
	if fc.TestOnly != nil {
		if err := TestOnlyAllow(&cfg, fc.TestOnly); err != nil {
			return nil, nil, nil, err
		}
		log.Warn("test-only address filter overrides are active", "allow_prefixes", fc.TestOnly.AllowPrefixes)
	}
	srv, err := New(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, j := range fc.Jobs {
		if _, err := srv.Register(j); err != nil {
			return nil, nil, nil, err
		}
	}
	listen, keysListen := fc.Listen, fc.KeysListen
	if listen == "" {
		listen = ":3128"
	}
	if keysListen == "" {
		keysListen = ":8081"
	}
	pl, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("listen for the proxy on %s: %w", listen, err)
	}
	kl, err := net.Listen("tcp", keysListen)
	if err != nil {
		pl.Close()
		return nil, nil, nil, fmt.Errorf("listen for the key endpoints on %s: %w", keysListen, err)
	}
	return srv, pl, kl, nil
}
