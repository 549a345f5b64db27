// Command upstream is the stand-in for the internet in the egress integration tests: it runs
// in a `FROM scratch` container on the run's outside network, where only the proxy can reach
// it. It serves plain HTTP on :80 and TLS (a self-signed certificate made at start) on :443:
//
//	/hello            "hello from upstream"
//	/bytes?n=N        N bytes
//	/mcp              a streamable-HTTP MCP server (tools echo and wipe) that answers only
//	                  `Authorization: Bearer trk-secret`: a remote connector's endpoint
//	/v1/usage-json    an Anthropic message with usage (1000 input, 500 output tokens)
//	/v1/usage-stream  the same as server-sent events
//	anything else     "ok"
//
// and prints `SEEN <path> x-api-key=… authorization=… x-goog-api-key=…` for every request,
// so a test reads from the container's logs which key reached the API, while the agent's
// response never carries it.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log"
	"math/big"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	mcpHandler := newMCP()
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("SEEN %s x-api-key=%s authorization=%s x-goog-api-key=%s\n", r.URL.Path,
			r.Header.Get("X-Api-Key"), r.Header.Get("Authorization"), r.Header.Get("X-Goog-Api-Key"))
		switch r.URL.Path {
		case "/mcp":
			if r.Header.Get("Authorization") != "Bearer trk-secret" {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			mcpHandler.ServeHTTP(w, r)
		case "/hello":
			fmt.Fprintln(w, "hello from upstream")
		case "/v1/usage-json":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"type":"message","model":"claude-sonnet-4-5","content":[{"type":"text","text":"ok"}],"usage":{"input_tokens":1000,"output_tokens":500}}`)
		case "/v1/usage-stream":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":1000,\"output_tokens\":1}}}\n\n"+
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\n\n"+
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":500}}\n\n")
		case "/bytes":
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			w.Header().Set("Content-Length", strconv.Itoa(n))
			buf := make([]byte, 64<<10)
			for n > 0 {
				k := min(n, len(buf))
				if _, err := w.Write(buf[:k]); err != nil {
					return
				}
				n -= k
			}
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	cert, err := selfSigned()
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		srv := &http.Server{Addr: ":443", Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
		log.Fatal(srv.ListenAndServeTLS("", ""))
	}()
	srv := &http.Server{Addr: ":80", Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, "upstream listening on :80 and :443")
	log.Fatal(srv.ListenAndServe())
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "upstream"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
