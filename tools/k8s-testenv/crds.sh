#!/usr/bin/env bash
# Fetch the CustomResourceDefinitions the test control plane installs (prometheus-operator, Istio, Gateway
# API, KEDA, cert-manager) from their upstream Go modules, at the versions pinned below, into a cache outside the
# repository:
#
#   ${YUNZHOU_K8S_CACHE:-~/.cache/yunzhou/k8s}/crds-<key>/crds.yaml
#
# <key> hashes this script, so changing a version fetches a fresh bundle and a second run does nothing.
# `go mod download` verifies every module against the checksum database, so the YAML is what upstream
# tagged. The bundle appears all at once (written to a temporary file of its own, then renamed), so two
# fetches at once both succeed.
#
#   crds.sh              fetch if needed, then print the bundle's path on stdout
#   crds.sh --print-path print the bundle's path without fetching (it may not exist yet)
set -euo pipefail

# module@version  file(s) inside the module (relative paths; a `name=…,…` suffix keeps only those CRDs)
modules=(
  "github.com/prometheus-operator/prometheus-operator@v0.85.0"
  "istio.io/api@v1.32.0"
  "sigs.k8s.io/gateway-api@v1.6.3"
  "github.com/kedacore/keda/v2@v2.21.0"
  "github.com/cert-manager/cert-manager@v1.21.2"
)
files=(
  "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"
  "kubernetes/customresourcedefinitions.gen.yaml=virtualservices.networking.istio.io,destinationrules.networking.istio.io,authorizationpolicies.security.istio.io,peerauthentications.security.istio.io"
  "config/crd/standard/gateway.networking.k8s.io_gatewayclasses.yaml config/crd/standard/gateway.networking.k8s.io_gateways.yaml config/crd/standard/gateway.networking.k8s.io_httproutes.yaml config/crd/standard/gateway.networking.k8s.io_referencegrants.yaml"
  "config/crd/bases/keda.sh_scaledobjects.yaml config/crd/bases/keda.sh_triggerauthentications.yaml"
  "deploy/crds/cert-manager.io_certificates.yaml deploy/crds/cert-manager.io_issuers.yaml deploy/crds/cert-manager.io_clusterissuers.yaml"
)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${YUNZHOU_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/yunzhou/k8s}"
key="$(sha256sum "$here/crds.sh" | cut -c1-16)"
out="$cache_root/crds-$key"
bundle="$out/crds.yaml"

if [ "${1:-}" = "--print-path" ] || [ -f "$bundle" ]; then
  echo "$bundle"
  exit 0
fi

export GOTOOLCHAIN=local GO111MODULE=on GOFLAGS=-mod=mod
command -v go >/dev/null || { echo "k8s-crds: Go is not on PATH (need Go >= 1.26)" >&2; exit 1; }
mkdir -p "$out"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# keep_crds NAMES FILE — print only the YAML documents of FILE whose metadata.name is in NAMES (comma list)
keep_crds() {
  awk -v names=",$1," '
    function flush() { if (doc != "" && keep) printf "---\n%s", doc; doc = ""; keep = 0 }
    /^---/ { flush(); next }
    /^  name: / { if (index(names, "," $2 ",")) keep = 1 }
    { doc = doc $0 "\n" }
    END { flush() }
  ' "$2"
}

# a file of this run's own: two builds at once (a test fixture beside `make k8s-build`) must not share it
partial="$(mktemp "$out/crds.yaml.XXXXXX")"
trap 'rm -rf "$scratch" "$partial"' EXIT
{
  for i in "${!modules[@]}"; do
    module="${modules[$i]}"
    echo "k8s-crds: $module" >&2
    dir="$(cd "$scratch" && go mod download -json "$module" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
    [ -d "$dir" ] || { echo "k8s-crds: go mod download $module gave no directory" >&2; exit 1; }
    for spec in ${files[$i]}; do
      file="${spec%%=*}"
      if [ "$spec" != "$file" ]; then
        keep_crds "${spec#*=}" "$dir/$file"
      else
        echo "---"
        cat "$dir/$file"
      fi
    done
  done
} >"$partial"
chmod 0644 "$partial"
mv -f "$partial" "$bundle"
echo "$bundle"
