#!/usr/bin/env bash
# Build (once) and cache metal3's baremetal-operator (BMO) for the metal3 end-to-end test, with
# the real metal3 CRDs of the same release. Test-only: nothing here is part of what vinod ships.
#
# The Go module proxy refuses metal3's modules, so BMO is built from a source tarball (BMO at the
# pinned tag, plus the ironic-standalone-operator API module its go.mod points at); its other
# dependencies come from the Go module proxy with the ordinary `go` client. Installed outside the
# repository:
#
#   ${VINOD_BMO_CACHE:-/var/cache/vinod-test/bmo}/<BMO version>/baremetal-operator
#   ${VINOD_BMO_CACHE:-/var/cache/vinod-test/bmo}/<BMO version>/crds/metal3.io_*.yaml
#
# The binary's path is printed as the LAST line of stdout; all progress output goes to stderr:
#
#   BMO=$(scripts/bmo-binary.sh)
#
# Idempotent: when the binary and the CRDs are cached the build is skipped. `--force` rebuilds.
#
# Environment:
#   VINOD_BMO_SRC     the source tarball (default: ../shared/metal3/
#                     baremetal-operator-v0.13.2-src.tar.gz, relative to the repository)
#   VINOD_BMO_CACHE   cache root (default /var/cache/vinod-test/bmo)
#   GO                go binary (default: `go` on PATH, else /usr/local/go/bin/go); Go >= 1.26
#   GOCACHE/GOMODCACHE are honoured; the Go defaults (outside the repo) are fine.
set -euo pipefail

# ---- pinned version ------------------------------------------------------------
BMO_VERSION="v0.13.2"          # metal3-io/baremetal-operator
# -----------------------------------------------------------------------------

. "$(dirname "$0")/go-build-lib.sh"
go_build_init bmo-binary 2,24 "$@"

REPO="$(cd "$(dirname "$0")/.." && pwd)"
SRC="${VINOD_BMO_SRC:-${REPO}/../shared/metal3/baremetal-operator-${BMO_VERSION}-src.tar.gz}"
CACHE_ROOT="${VINOD_BMO_CACHE:-/var/cache/vinod-test/bmo}"
VERSION_DIR="${CACHE_ROOT}/${BMO_VERSION}"
BIN="${VERSION_DIR}/baremetal-operator"
CRD_DIR="${VERSION_DIR}/crds"

# True when the binary runs and metal3's CRDs (BareMetalHost, HardwareData, …) are next to it.
cached_ok() {
  [[ -x "${BIN}" && -s "${CRD_DIR}/metal3.io_baremetalhosts.yaml" \
    && -s "${CRD_DIR}/metal3.io_hardwaredata.yaml" ]] || return 1
  timeout 20 "${BIN}" --help >/dev/null 2>&1 || return 1
}

[[ -f "${SRC}" ]] || cached_ok || die "no BMO source tarball at ${SRC} (set VINOD_BMO_SRC)"
go_build_start "${VERSION_DIR}" cached_ok "${BIN}" bmo
log "building baremetal-operator ${BMO_VERSION} from ${SRC} (about 2 min on 2 cores)"
START=${SECONDS}
tar -xzf "${SRC}" -C "${WORK}"
[[ -f "${WORK}/bmo/go.mod" ]] || die "${SRC} has no bmo/go.mod"
(cd "${WORK}/bmo" && "${GO}" build -trimpath -ldflags="-s -w" -o "${WORK}/baremetal-operator" .)

# ---- install -----------------------------------------------------------------
mkdir -p "${CRD_DIR}"
install -m 0644 "${WORK}"/bmo/config/base/crds/bases/metal3.io_*.yaml "${CRD_DIR}/"
install -m 0755 "${WORK}/baremetal-operator" "${VERSION_DIR}/.baremetal-operator.new"
mv -f "${VERSION_DIR}/.baremetal-operator.new" "${BIN}"
cat >"${VERSION_DIR}/versions.env" <<EOF
BMO_VERSION=${BMO_VERSION}
GO_VERSION=$("${GO}" env GOVERSION)
BUILD_SECONDS=$((SECONDS - START))
EOF

cached_ok || die "the installed baremetal-operator in ${VERSION_DIR} does not run"
log "built in $((SECONDS - START)) s"
echo "${BIN}" >&3
