# Shared by the scripts that build and cache test binaries with Go (sourced, not run):
# scripts/k8s-test-binaries.sh and scripts/bmo-binary.sh.
#
#   go_build_init TAG HELP_LINES ARG...
#       sends stdout to stderr (the result alone goes to file descriptor 3, the caller's
#       stdout), defines `log` and `die` (prefixed `[TAG]`) and parses the script's arguments:
#       `--force` sets FORCE=1 (rebuild), `-h`/`--help` prints the script's header comment
#       lines HELP_LINES (`2,21`).
#   go_build_start DIR CHECK RESULT TAG
#       when CHECK succeeds (and FORCE is 0), prints RESULT on fd 3 and exits 0; otherwise takes
#       the build lock DIR/.lock (held until exit) and checks again (a concurrent run may have
#       built it meanwhile), then sets GO and a Go environment independent of the caller's, and
#       WORK to a temporary directory removed on exit.

log() { printf '[%s] %s\n' "${LOG_TAG}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

go_build_init() {
  local help=$2
  LOG_TAG=$1
  exec 3>&1 1>&2
  FORCE=0
  case "${3:-}" in
    "") ;;
    --force) FORCE=1 ;;
    -h|--help) sed -n "${help}p" "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $3 (usage: $0 [--force])" ;;
  esac
}

go_build_start() {
  local dir=$1 check=$2 result=$3 tag=$4
  if [[ "${FORCE}" == 0 ]] && "${check}"; then
    log "cached in ${dir}: OK"
    echo "${result}" >&3
    exit 0
  fi
  mkdir -p "${dir}"
  exec 9>"${dir}/.lock"
  flock -w 3600 9 || die "timed out waiting for the build lock ${dir}/.lock"
  if [[ "${FORCE}" == 0 ]] && "${check}"; then
    log "cached in ${dir}: OK (built by a concurrent run)"
    echo "${result}" >&3
    exit 0
  fi

  if [[ -z "${GO:-}" ]]; then
    if command -v go >/dev/null 2>&1; then GO="$(command -v go)"; else GO=/usr/local/go/bin/go; fi
  fi
  [[ -x "${GO}" ]] || die "go not found (set GO=/path/to/go)"
  export GOTOOLCHAIN=local
  export GOWORK=off
  export GO111MODULE=on
  export GOFLAGS="-mod=mod -buildvcs=false"
  export CGO_ENABLED=0

  WORK="$(mktemp -d "${TMPDIR:-/tmp}/vinod-${tag}-build.XXXXXX")"
  trap 'rm -rf "${WORK}"' EXIT
  log "go: $("${GO}" version)"
}
