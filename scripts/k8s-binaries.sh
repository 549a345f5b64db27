#!/usr/bin/env bash
# Builds what the Kubernetes tests run: kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet and etcd at the versions tools/k8s/go.mod pins, from k8s.io/kubernetes as the Go module
# proxy serves it (no source is vendored or committed), and kwok (sigs.k8s.io/kwok), which
# plays the kubelet of fake nodes in the scale tests; once, into a cache directory, whose path
# it prints. Cold: about 10 minutes and 3-5 GB of disk on 2 cores; then instant.
#   K8S_CACHE   where the binaries go (default: ~/.cache/agentrunner/k8s)
set -euo pipefail
cd "$(dirname "$0")/../tools/k8s"

version=$(grep -oE "^(require )?[[:space:]]*k8s.io/kubernetes v[0-9.]+" go.mod | grep -oE "v[0-9.]+$" | head -1)
[ -n "$version" ] || { echo "k8s-binaries: no k8s.io/kubernetes version in tools/k8s/go.mod" >&2; exit 1; }
dir="${K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentrunner/k8s}/$version"
mkdir -p "$dir"
# Binaries that report their real version (the API server's discovery and skew checks read it).
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 \
-X k8s.io/component-base/version.gitMinor=$(echo "$version" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean"
for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet; do
	if [ ! -x "$dir/$cmd" ]; then
		echo "k8s-binaries: building $cmd $version into $dir (once; minutes)" >&2
		CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dir/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
		mv "$dir/$cmd.tmp" "$dir/$cmd"
	fi
done
# etcd at the version this Kubernetes release requires (Debian's 3.4 predates the watch
# progress requests the API server wants before it serves streamed lists).
if [ ! -x "$dir/etcd" ]; then
	echo "k8s-binaries: building etcd into $dir (once)" >&2
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/etcd.tmp" go.etcd.io/etcd/server/v3
	mv "$dir/etcd.tmp" "$dir/etcd"
fi
# kwok plays the kubelet of fake nodes in the scale tests; a program of its own, at its own
# k8s.io release, so it is installed apart from tools/k8s.
kwok_version=v0.7.0
if [ ! -x "$dir/kwok" ]; then
	echo "k8s-binaries: building kwok $kwok_version into $dir (once)" >&2
	GOBIN="$dir/.kwok" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$kwok_version"
	mv "$dir/.kwok/kwok" "$dir/kwok" && rmdir "$dir/.kwok"
fi
# kube-router's firewall enforces NetworkPolicy on the real test node: it works with iptables
# and ipset, which this kernel has (controllers built on nftables queues or IPVS do not run).
# Only in the tests' own network namespace; v2.1.0 is the release the module proxy serves.
router_version=v2.1.0
if [ ! -x "$dir/kube-router" ]; then
	echo "k8s-binaries: building kube-router $router_version into $dir (once)" >&2
	GOBIN="$dir/.kube-router" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$router_version"
	mv "$dir/.kube-router/kube-router" "$dir/kube-router" && rmdir "$dir/.kube-router"
fi
echo "$dir"
