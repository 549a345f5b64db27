// Package nettest holds network helpers for tests.
package nettest

import (
	"net"
	"testing"
)

// AcceptAll listens on addr (host:port, port 0 for any) and accepts and closes every
// connection until the listener is closed, at the latest when the test ends: an address that
// answers, to tell whether something can reach it (a confinement's canary, a probe of what an
// agent must not reach). Close the listener to make the address refuse.
func AcceptAll(t testing.TB, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln
}
