#!/usr/bin/env bash
# Builds the Kubernetes control plane the kube tests run against — kube-apiserver,
# kube-controller-manager and kube-scheduler at the version tools/k8s/go.mod pins — from k8s.io/kubernetes as the Go
# module proxy serves it (no source is vendored or committed), once, into a cache directory, and
# prints that directory. Cold: about 10 minutes and 3-5 GB of disk on 2 cores; then instant.
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
for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
	if [ ! -x "$dir/$cmd" ]; then
		echo "k8s-binaries: building $cmd $version into $dir (once; minutes)" >&2
		CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$dir/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
		mv "$dir/$cmd.tmp" "$dir/$cmd"
	fi
done
echo "$dir"
