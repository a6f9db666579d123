#!/usr/bin/env bash
# Build (once) and cache the binaries of a real Kubernetes control plane for
# tests: kube-apiserver, etcd and kubectl, in the spirit of controller-runtime's
# envtest, and kube-controller-manager (tests that need the garbage collector
# run it). Everything is built from Go modules with the ordinary `go` client,
# pinned below, and installed outside the repository:
#
#   ${VINOD_K8S_CACHE:-/var/cache/vinod-test/k8s}/<k8s version>/bin/{kube-apiserver,etcd,kubectl,kube-controller-manager}
#
# The bin directory is printed as the LAST line of stdout; all progress output
# goes to stderr, so callers can do:
#
#   BIN=$(scripts/k8s-test-binaries.sh)
#
# Idempotent: when all four binaries exist and report the pinned versions the
# build is skipped (a no-op run takes well under a second). `--force` rebuilds.
#
# Environment:
#   VINOD_K8S_CACHE   cache root (default /var/cache/vinod-test/k8s)
#   GO                go binary (default: `go` on PATH, else /usr/local/go/bin/go)
#   GOCACHE/GOMODCACHE are honoured; the Go defaults (outside the repo) are fine.
set -euo pipefail

# ---- pinned versions ---------------------------------------------------------
K8S_VERSION="v1.37.2"          # k8s.io/kubernetes (kube-apiserver, kubectl, kube-controller-manager)
ETCD_VERSION="v3.7.3"          # go.etcd.io/etcd/server/v3 (etcd)
KUBECTL_VERSION="${K8S_VERSION}" # built from k8s.io/kubernetes/cmd/kubectl, same release
# -----------------------------------------------------------------------------

# Staging modules (k8s.io/api, k8s.io/apiserver, ...) are published as v0.N.M
# for Kubernetes v1.N.M.
STAGING_VERSION="v0.${K8S_VERSION#v1.}"

. "$(dirname "$0")/go-build-lib.sh"
go_build_init k8s-test-binaries 2,21 "$@"

CACHE_ROOT="${VINOD_K8S_CACHE:-/var/cache/vinod-test/k8s}"
VERSION_DIR="${CACHE_ROOT}/${K8S_VERSION}"
BIN_DIR="${VERSION_DIR}/bin"

# True when all four binaries exist, run, and report the pinned versions.
binaries_ok() {
  local out b
  for b in kube-apiserver kube-controller-manager; do
    [[ -x "${BIN_DIR}/${b}" ]] || return 1
    out="$(timeout 20 "${BIN_DIR}/${b}" --version 2>&1)" || return 1
    [[ "${out}" == *"${K8S_VERSION}"* ]] || return 1
  done
  [[ -x "${BIN_DIR}/etcd" && -x "${BIN_DIR}/kubectl" ]] || return 1
  out="$(timeout 20 "${BIN_DIR}/etcd" --version 2>&1)" || return 1
  [[ "${out}" == *"${ETCD_VERSION#v}"* ]] || return 1
  out="$(timeout 20 "${BIN_DIR}/kubectl" version --client 2>&1)" || return 1
  [[ "${out}" == *"${KUBECTL_VERSION}"* ]] || return 1
  return 0
}

go_build_start "${VERSION_DIR}" binaries_ok "${BIN_DIR}" k8s
log "building kube-apiserver+kubectl+kube-controller-manager ${K8S_VERSION}, etcd ${ETCD_VERSION} (cache ${CACHE_ROOT})"
START=${SECONDS}
mkdir -p "${WORK}/out"

# ---- kube-apiserver + kubectl from k8s.io/kubernetes -------------------------
# k8s.io/kubernetes' go.mod replaces every staging module with ./staging/src/...,
# which does not exist in the module zip, and replace directives of a dependency
# are ignored anyway. So build from a throwaway main module that requires
# k8s.io/kubernetes and maps each of those staging modules to its published
# v0.N.M release. The list is derived from the upstream go.mod, not hard-coded.
log "fetching k8s.io/kubernetes@${K8S_VERSION} module metadata"
K8S_GOMOD="$(cd "${WORK}" && "${GO}" mod download -json "k8s.io/kubernetes@${K8S_VERSION}" \
  | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
[[ -n "${K8S_GOMOD}" && -f "${K8S_GOMOD}" ]] || die "could not download k8s.io/kubernetes@${K8S_VERSION}"
K8S_INFO="${K8S_GOMOD%.mod}.info"

# `replace k8s.io/x => ./staging/src/k8s.io/x` (single line or inside a block).
mapfile -t STAGING < <(awk '
  { sub(/\/\/.*/, "") }
  /=>[[:space:]]*\.\/staging\// {
    for (i = 1; i <= NF; i++) if ($i == "=>") { p = $(i-1); print p; break }
  }' "${K8S_GOMOD}" | sort -u)
[[ "${#STAGING[@]}" -gt 0 ]] || die "no staging replace directives found in ${K8S_GOMOD}"
log "${#STAGING[@]} staging modules -> ${STAGING_VERSION}"

# Upstream's language version and godebug defaults, so the binaries behave as
# upstream builds do.
K8S_GO_LINE="$(awk '$1 == "go" { print $2; exit }' "${K8S_GOMOD}")"
mapfile -t K8S_GODEBUG < <(awk '
  { sub(/\/\/.*/, "") }
  inblock && $1 == ")" { inblock = 0; next }
  inblock && NF { print $1; next }
  $1 == "godebug" && $2 == "(" { inblock = 1; next }
  $1 == "godebug" && NF >= 2 { print $2 }' "${K8S_GOMOD}")

APIMOD="${WORK}/k8s"
mkdir -p "${APIMOD}"
(
  cd "${APIMOD}"
  "${GO}" mod init vinod.test/k8s-test-binaries >/dev/null 2>&1
  args=(-go="${K8S_GO_LINE}" -require="k8s.io/kubernetes@${K8S_VERSION}")
  for m in "${STAGING[@]}"; do args+=(-replace="${m}=${m}@${STAGING_VERSION}"); done
  for g in "${K8S_GODEBUG[@]}"; do args+=(-godebug="${g}"); done
  "${GO}" mod edit "${args[@]}"
)

# Same version stamping as upstream's hack/lib/version.sh.
K8S_MINOR="${K8S_VERSION#v1.}"; K8S_MINOR="${K8S_MINOR%%.*}"
BUILD_DATE="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "${K8S_INFO}" 2>/dev/null || true)"
[[ -n "${BUILD_DATE}" ]] || BUILD_DATE="1970-01-01T00:00:00Z"
K8S_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
  K8S_LDFLAGS+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${K8S_MINOR}"
  K8S_LDFLAGS+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${BUILD_DATE}"
done

log "go build kube-apiserver, kubectl, kube-controller-manager (this takes a while on 2 cores)"
(
  cd "${APIMOD}"
  "${GO}" build -trimpath -ldflags="${K8S_LDFLAGS}" -o "${WORK}/out/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  "${GO}" build -trimpath -ldflags="${K8S_LDFLAGS}" -o "${WORK}/out/kubectl" k8s.io/kubernetes/cmd/kubectl
  "${GO}" build -trimpath -ldflags="${K8S_LDFLAGS}" -o "${WORK}/out/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager
)

# ---- etcd from go.etcd.io/etcd/server/v3 -------------------------------------
# Its go.mod also has ../api style replaces, so build it from its own
# throwaway main module (separate from the Kubernetes one so that neither
# changes the other's dependency versions).
log "go build etcd ${ETCD_VERSION}"
ETCDMOD="${WORK}/etcd"
mkdir -p "${ETCDMOD}"
(
  cd "${ETCDMOD}"
  ETCD_GOMOD="$("${GO}" mod download -json "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -n "${ETCD_GOMOD}" && -f "${ETCD_GOMOD}" ]] || { echo "could not download go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >&2; exit 1; }
  ETCD_GO_LINE="$(awk '$1 == "go" { print $2; exit }' "${ETCD_GOMOD}")"
  "${GO}" mod init vinod.test/etcd-test-binary >/dev/null 2>&1
  "${GO}" mod edit -go="${ETCD_GO_LINE}" -require="go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
  "${GO}" build -trimpath -ldflags="-s -w" -o "${WORK}/out/etcd" go.etcd.io/etcd/server/v3
)

# ---- install -----------------------------------------------------------------
for b in kube-apiserver etcd kubectl kube-controller-manager; do
  [[ -x "${WORK}/out/${b}" ]] || die "build produced no ${b}"
done
mkdir -p "${BIN_DIR}"
for b in kube-apiserver etcd kubectl kube-controller-manager; do
  install -m 0755 "${WORK}/out/${b}" "${BIN_DIR}/.${b}.new"
  mv -f "${BIN_DIR}/.${b}.new" "${BIN_DIR}/${b}"
done
cat >"${VERSION_DIR}/versions.env" <<EOF
K8S_VERSION=${K8S_VERSION}
STAGING_VERSION=${STAGING_VERSION}
KUBECTL_VERSION=${KUBECTL_VERSION}
ETCD_VERSION=${ETCD_VERSION}
GO_VERSION=$("${GO}" env GOVERSION)
BUILD_SECONDS=$((SECONDS - START))
EOF

binaries_ok || die "installed binaries in ${BIN_DIR} do not report the pinned versions"
log "built in $((SECONDS - START)) s"
log "kube-apiserver: $("${BIN_DIR}/kube-apiserver" --version 2>&1)"
log "etcd: $("${BIN_DIR}/etcd" --version 2>&1 | head -1)"
log "kubectl: $("${BIN_DIR}/kubectl" version --client 2>&1 | head -1)"
echo "${BIN_DIR}" >&3
