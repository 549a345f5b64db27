package kube

import (
	"bufio"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/agentrunner/agentrunner/sandbox/kube/carry"
)

// controlSession waits for one egress proxy's pod to dial its control channel
// (carry.ControlRoute). Its token is good for one connection: the session is forgotten once
// a connection came, so nobody else can take the channel over with the same token. The
// channel is TLS with id's certificate, taken only from the end that gives id's proof.
type controlSession struct {
	id   *carry.ControlIdentity
	conn chan io.ReadWriteCloser
	// gone: nobody waits any more; a connection that still comes is closed.
	gone bool
}

// expectControl makes the exchange take one control connection from the holder of token.
func (x *Exchange) expectControl(token string) (*controlSession, error) {
	id, err := carry.NewControlIdentity()
	if err != nil {
		return nil, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.controls == nil {
		x.controls = map[[32]byte]*controlSession{}
	}
	c := &controlSession{id: id, conn: make(chan io.ReadWriteCloser, 1)}
	x.controls[sha256.Sum256([]byte(token))] = c
	return c, nil
}

// forgetControl ends c: its token no longer opens a channel, and a channel that came but was
// not taken is closed.
func (x *Exchange) forgetControl(token string, c *controlSession) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.controls, sha256.Sum256([]byte(token)))
	c.gone = true
	select {
	case conn := <-c.conn:
		conn.Close()
	default:
	}
}

// deliver hands conn to whoever waits on c, or closes it when nobody does any more.
func (x *Exchange) deliver(c *controlSession, conn io.ReadWriteCloser) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if c.gone {
		conn.Close()
		return
	}
	c.conn <- conn // the one connection a token opens: the buffer holds it
}

// takeControl returns and forgets the session of the request's token (nil: none).
func (x *Exchange) takeControl(r *http.Request) *controlSession {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || got == "" {
		return nil
	}
	key := sha256.Sum256([]byte(got))
	x.mu.Lock()
	defer x.mu.Unlock()
	c := x.controls[key]
	delete(x.controls, key)
	return c
}

// serveControl upgrades a proxy's request to its control channel.
func (x *Exchange) serveControl(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !strings.EqualFold(r.Header.Get("Upgrade"), carry.ControlProtocol) {
		http.Error(w, "want GET with Upgrade: "+carry.ControlProtocol, http.StatusBadRequest)
		return
	}
	c := x.takeControl(r)
	if c == nil {
		http.Error(w, "unknown or missing proxy token", http.StatusUnauthorized)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "cannot take the connection over: "+err.Error(), http.StatusInternalServerError)
		return
	}
	// The server's deadlines were for one request; the channel lives as long as the run.
	_ = conn.SetDeadline(time.Time{})
	_, err = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + carry.ControlProtocol + "\r\n\r\n")
	if err == nil {
		err = brw.Flush()
	}
	if err != nil {
		conn.Close()
		return
	}
	secured, err := c.id.Accept(&upgraded{Conn: conn, r: brw.Reader}, 30*time.Second)
	if err != nil {
		return // someone with the token but without the proof; the proxy's own dial is refused now too
	}
	x.deliver(c, secured)
}

// upgraded is a hijacked connection whose first bytes may sit in the server's reader.
type upgraded struct {
	net.Conn
	r *bufio.Reader
}

func (u *upgraded) Read(p []byte) (int, error) { return u.r.Read(p) }
