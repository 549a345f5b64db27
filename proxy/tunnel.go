package proxy

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
)

// tunnel answers a checked CONNECT: it dials, confirms, then copies both ways until each side
// has closed. Between two TCP connections io.Copy uses splice(2) on Linux, so bytes do not
// cross user space.
func (s *Server) tunnel(w http.ResponseWriter, r *http.Request, addrs []netip.AddrPort) {
	up, err := s.dialAny(r.Context(), addrs)
	if err != nil {
		http.Error(w, "agentrunner proxy: connect "+r.Host+": "+err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "agentrunner proxy: CONNECT needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	client, brw, err := hj.Hijack()
	if err != nil {
		up.Close()
		s.log.Warn("hijack CONNECT", "dest", r.Host, "error", err)
		return
	}
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		client.Close()
		up.Close()
		return
	}
	// Bytes the client sent right after its CONNECT may sit in the server's reader.
	if n := brw.Reader.Buffered(); n > 0 {
		buf, _ := brw.Reader.Peek(n)
		if _, err := up.Write(buf); err != nil {
			client.Close()
			up.Close()
			return
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(up, client)
		closeWrite(up)
	}()
	_, _ = io.Copy(client, up)
	closeWrite(client)
	wg.Wait()
	client.Close()
	up.Close()
}

// closeWrite half-closes c so the peer sees EOF while the other direction still flows.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}
