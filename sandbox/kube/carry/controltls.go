package carry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"time"
)

// The control channel carries the run's model API keys, and the exchange may be plain HTTP
// across a network the runner does not own, so the channel is TLS inside the upgraded
// connection, both ends pinned: the proxy trusts only the certificate the daemon made for this
// one proxy (ControlIdentity's, handed over in the proxy's Secret), and the daemon takes the
// channel only from the end that then proves it holds the proxy's proof (also in the Secret,
// never sent in the clear). Someone on the path who replays the upgrade's token gets a TLS
// handshake and no proof to give; someone posing as the exchange cannot finish the handshake.
const (
	EnvControlCert  = "AGENTRUNNER_CONTROL_CERT"
	EnvControlProof = "AGENTRUNNER_CONTROL_PROOF"
	controlName     = "agentrunner-exchange"
	proofLen        = 64 // hex digits
)

// ControlIdentity is the daemon's side of one proxy's channel.
type ControlIdentity struct {
	CertPEM []byte // for the proxy's Secret (public)
	Proof   string // for the proxy's Secret (secret)
	cert    tls.Certificate
}

// NewControlIdentity makes a key pair, a certificate for it and a proof, for one proxy.
func NewControlIdentity() (*ControlIdentity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: controlName},
		DNSNames:     []string{controlName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour), // the proxy dials once, at its start
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	b := make([]byte, proofLen/2)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return &ControlIdentity{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Proof:   hex.EncodeToString(b),
		cert:    tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
	}, nil
}

// Accept runs the daemon's end over an upgraded connection: the TLS handshake, then the
// proxy's proof, within limit. It returns the channel, or closes conn and says why.
func (id *ControlIdentity) Accept(conn net.Conn, limit time.Duration) (net.Conn, error) {
	_ = conn.SetDeadline(time.Now().Add(limit))
	tc := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{id.cert}, MinVersion: tls.VersionTLS13})
	got := make([]byte, proofLen+1)
	_, err := io.ReadFull(tc, got)
	if err == nil && (subtle.ConstantTimeCompare(got[:proofLen], []byte(id.Proof)) != 1 || got[proofLen] != '\n') {
		err = errors.New("wrong proof")
	}
	if err != nil {
		tc.Close()
		return nil, fmt.Errorf("the proxy's control channel: %w", err)
	}
	_ = conn.SetDeadline(time.Time{})
	return tc, nil
}

// secure runs the proxy's end over an upgraded connection: TLS to the pinned certificate,
// then the proof.
func secure(ctx context.Context, rwc io.ReadWriteCloser, certPEM []byte, proof string) (io.ReadWriteCloser, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		return nil, fmt.Errorf("$%s holds no certificate", EnvControlCert)
	}
	if len(proof) != proofLen {
		return nil, fmt.Errorf("$%s is not a proof", EnvControlProof)
	}
	tc := tls.Client(streamConn{rwc}, &tls.Config{RootCAs: pool, ServerName: controlName, MinVersion: tls.VersionTLS13})
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		tc.Close()
		return nil, fmt.Errorf("the exchange's end of the control channel is not the runner's: %w", err)
	}
	if _, err := io.WriteString(tc, proof+"\n"); err != nil {
		tc.Close()
		return nil, err
	}
	return tc, nil
}

// streamConn is an upgraded HTTP body as the net.Conn TLS wants; it has no deadlines (the
// handshake is bounded by its context, which closes the stream).
type streamConn struct{ io.ReadWriteCloser }

func (streamConn) LocalAddr() net.Addr              { return controlAddr{} }
func (streamConn) RemoteAddr() net.Addr             { return controlAddr{} }
func (streamConn) SetDeadline(time.Time) error      { return nil }
func (streamConn) SetReadDeadline(time.Time) error  { return nil }
func (streamConn) SetWriteDeadline(time.Time) error { return nil }

type controlAddr struct{}

func (controlAddr) Network() string { return "agentrunner-control" }
func (controlAddr) String() string  { return controlName }
