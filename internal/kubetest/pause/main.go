// Command pause holds a pod's namespaces on the test node (internal/kubetest), the part
// registry.k8s.io/pause plays in a cluster, which cannot be pulled here: it sleeps until told
// to stop, and reaps the orphans a pod's shared PID namespace would hand it.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
