#!/usr/bin/env bash
# Build the test cluster's real node (kubelet, kube-proxy and the pod sandbox's `pause`) from the wrapper
# Go module in ./node (same Kubernetes version and pins as ./kubernetes), into a cache outside the repo:
#
#   ${YUNZHOU_K8S_CACHE:-~/.cache/yunzhou/k8s}/node-<key>/bin/
#
# <key> hashes node/go.mod, node/go.sum and this script; the control plane's own cache key (build.sh) is
# untouched, so adding or bumping the node never rebuilds the control plane. `pause` is Kubernetes' own
# build/pause/linux/pause.c from that module, compiled statically with the C compiler on PATH.
#
#   node.sh              build if needed, then print the bin directory on stdout (progress on stderr)
#   node.sh --print-dir  print the bin directory without building
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${YUNZHOU_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/yunzhou/k8s}"
# Keep this list and order in step with yunzhou.testing.k8s_node._KEY_FILES.
key="$(cd "$here" && cat node/go.mod node/go.sum node.sh | sha256sum | cut -c1-16)"
out="$cache_root/node-$key"
bin="$out/bin"
if [ "${1:-}" = "--print-dir" ] || [ -d "$bin" ]; then
  echo "$bin"
  exit 0
fi

export GOTOOLCHAIN=local CGO_ENABLED=0
command -v go >/dev/null || { echo "k8s-node-build: Go is not on PATH (need Go >= 1.26)" >&2; exit 1; }
command -v cc >/dev/null || { echo "k8s-node-build: no C compiler (cc) for pause.c" >&2; exit 1; }
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [ -d "$bin" ]; then  # a concurrent build finished it
  echo "$bin"
  exit 0
fi
work="$out/bin.partial"
rm -rf "$work"
mkdir -p "$work"
started=$SECONDS

cd "$here/node"
version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"  # e.g. v1.34.12
major="${version#v}" && major="${major%%.*}"
minor="${version#v*.}" && minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
echo "k8s-node-build: building kubelet and kube-proxy $version (log: $out/build.log)" >&2
if ! go build -v -p 2 -trimpath -buildvcs=false -ldflags "$ldflags" -o "$work/" \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy >"$out/build.log" 2>&1; then
  tail -n 30 "$out/build.log" >&2
  exit 1
fi
src="$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
cc -Os -static -Wall -Werror -DVERSION="$version-yunzhou" -o "$work/pause" "$src"
strip "$work/pause"
printf '%s\n' "kubernetes=$version" >"$work/VERSIONS"
mv "$work" "$bin"
echo "k8s-node-build: done in $((SECONDS - started))s: $bin" >&2
echo "$bin"
