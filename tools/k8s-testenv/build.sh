#!/usr/bin/env bash
# Build the test control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# kwok) from the wrapper Go modules beside this script, into a cache outside the repository:
#
#   ${YUNZHOU_K8S_CACHE:-~/.cache/yunzhou/k8s}/<key>/bin/
#
# <key> hashes the wrapper modules' go.mod/go.sum and this script, so changing a version or a flag builds
# a fresh set and a second run with the cache present does nothing. Binaries appear all at once (built
# into a temporary directory, then renamed), so a half-finished build is never mistaken for a cache hit.
#
#   build.sh              build if needed, then print the bin directory on stdout (progress on stderr)
#   build.sh --print-dir  print the bin directory without building (it may not exist yet)
#
# Uses the Go on PATH as is (GOTOOLCHAIN=local) and the module proxy from `go env`; Go's build cache
# (GOCACHE, by default ~/.cache/go-build) makes a rebuild after a version bump much cheaper.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${YUNZHOU_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/yunzhou/k8s}"
# Keep this list and order in step with yunzhou.testing.k8s._KEY_FILES.
key_files=(kubernetes/go.mod kubernetes/go.sum etcd/go.mod etcd/go.sum kwok/go.mod kwok/go.sum build.sh)
key="$(cd "$here" && cat "${key_files[@]}" | sha256sum | cut -c1-16)"
out="$cache_root/$key"
bin="$out/bin"

if [ "${1:-}" = "--print-dir" ]; then
  echo "$bin"
  exit 0
fi
if [ -d "$bin" ]; then
  echo "$bin"
  exit 0
fi

export GOTOOLCHAIN=local CGO_ENABLED=0
command -v go >/dev/null || { echo "k8s-build: Go is not on PATH (need Go >= 1.26)" >&2; exit 1; }
mkdir -p "$out"
exec 9>"$out/.lock"
if ! flock -n 9; then
  echo "k8s-build: another build of $key is running; waiting for it" >&2
  flock 9
fi
if [ -d "$bin" ]; then  # the other build finished it
  echo "$bin"
  exit 0
fi

work="$out/bin.partial"
rm -rf "$work"
mkdir -p "$work"
log="$out/build.log"
: >"$log"
started=$SECONDS

say() { printf 'k8s-build [%3dm%02ds] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*" >&2; }

# go_build MODULE_DIR LABEL LDFLAGS OUTPUT PACKAGE... — `go build -v` names each package as it is compiled;
# count them for a progress line every 100 packages and keep the full output in build.log.
go_build() {
  local dir="$1" label="$2" ldflags="$3" output="$4"
  shift 4
  local step_started=$SECONDS n=0 line
  say "building $label"
  set +e
  (cd "$here/$dir" && go build -v -p 2 -trimpath -buildvcs=false -ldflags "$ldflags" -o "$output" "$@") 2>&1 | {
    while IFS= read -r line; do
      printf '%s\n' "$line" >>"$log"
      n=$((n + 1))
      if [ $((n % 100)) -eq 0 ]; then say "  $label: $n packages compiled"; fi
    done
  }
  local rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ]; then
    say "FAILED building $label (exit $rc); last lines of $log:"
    tail -n 30 "$log" >&2
    exit "$rc"
  fi
  say "built $label in $((SECONDS - step_started))s"
}

module_version() { (cd "$here/$1" && go list -m -f '{{.Version}}' "$2"); }

kube_version="$(module_version kubernetes k8s.io/kubernetes)"  # e.g. v1.34.12
kube_major="${kube_version#v}"
kube_major="${kube_major%%.*}"
kube_minor="${kube_version#v*.}"
kube_minor="${kube_minor%%.*}"
kube_ldflags="-s -w"
# Same stamps as Kubernetes' hack/lib/version.sh, so `--version` and /version report the real release.
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$kube_major"
  kube_ldflags+=" -X $pkg.gitMinor=$kube_minor -X $pkg.gitTreeState=clean"
  kube_ldflags+=" -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
etcd_version="$(module_version etcd go.etcd.io/etcd/server/v3)"
kwok_version="$(module_version kwok sigs.k8s.io/kwok)"

say "cache miss for $key: building Kubernetes $kube_version, etcd $etcd_version, kwok $kwok_version"
say "with $(go version | cut -d' ' -f3) into $out (a cold build takes a while; log: $log)"

# One invocation for all Kubernetes commands, so the packages they share are compiled once.
go_build kubernetes "kube-apiserver, kube-controller-manager, kube-scheduler, kubectl $kube_version" \
  "$kube_ldflags" "$work/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
go_build etcd "etcd $etcd_version" "-s -w" "$work/etcd" go.etcd.io/etcd/server/v3
go_build kwok "kwok $kwok_version" "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok_version#v}" \
  "$work/kwok" sigs.k8s.io/kwok/cmd/kwok

# kwok ships no stages unless told: take the ones kwokctl uses by default (nodes become Ready and keep a
# lease, pods become Ready, complete and are deleted) from the very kwok version just built.
kwok_dir="$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
  pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
  echo "---"
  cat "$kwok_dir/kustomize/stage/$stage.yaml"
done >"$work/kwok-stages.yaml"

printf '%s\n' "kubernetes=$kube_version" "etcd=$etcd_version" "kwok=$kwok_version" >"$work/VERSIONS"
mv "$work" "$bin"
say "done in $((SECONDS - started))s: $bin"
echo "$bin"
