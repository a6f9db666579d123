#!/usr/bin/env bash
# One entry point for developers and CI, on Debian 12 as root:
#   scripts/dev.sh demo    install what is needed, build, and run vinod on the shipped example
#                          (standalone daemon; libvirtd and the VM bridge in a network namespace)
#   scripts/dev.sh test    install what is needed and run every check and test, then build the
#                          .deb and .rpm and test them (scripts/package-test.sh)
#   scripts/dev.sh setup   only install (idempotent: skips what is already there), including the
#                          kube-apiserver, etcd and kubectl the Kubernetes tests run (built once by
#                          scripts/k8s-test-binaries.sh into /var/cache/vinod-test/k8s; needs Go)
#                          and the Python venvs of the Redfish and Ironic tests, and metal3's
#                          baremetal-operator for the metal3 test (built once by
#                          scripts/bmo-binary.sh into /var/cache/vinod-test/bmo from the source
#                          tarball VINOD_BMO_SRC names; needs Go), and the distribution's signed
#                          shim and GRUB for the secure-boot test (scripts/secureboot-binaries.sh)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# Builds are cached outside the repository so a fresh clone reuses them.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/vinod/target}
# Incremental artefacts only help edit-compile loops; here they would double the cache's size
# (some 40 test binaries) for nothing.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
export DEBIAN_FRONTEND=noninteractive

# Build dependencies, then the real components the tests drive.
build_pkgs=(pkg-config libvirt-dev)
test_pkgs=(iproute2 dnsmasq-base busybox udhcpc tftp-hpa isc-dhcp-client strace curl
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils ipxe-qemu ipxe ovmf
  openssl)

say() { printf '== %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    say "run as root: it installs packages and the tests create network namespaces"
    exit 1
  fi
}

install_pkgs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

check_rust() {
  if ! command -v cargo >/dev/null; then
    say "cargo not found: install Rust >= 1.89 (e.g. rustup) and re-run"
    exit 1
  fi
  rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy >/dev/null 2>&1 || true
}

# The Kubernetes tests' control plane; a no-op when the binaries are cached.
k8s_binaries() {
  local bin
  if ! bin=$(scripts/k8s-test-binaries.sh | tail -n 1); then
    say "cannot provide the Kubernetes test binaries (see above); the Kubernetes tests need them"
    exit 1
  fi
  export VINOD_K8S_BIN="$bin"
}

setup_host() {
  need_root
  check_rust
  install_pkgs "${build_pkgs[@]}" "${test_pkgs[@]}"
}

# The supply-chain checker CI runs (licenses, bans, sources); built once into ~/.cargo/bin.
cargo_deny() {
  command -v cargo-deny >/dev/null && return
  say "installing cargo-deny (once)"
  cargo install --locked cargo-deny --version 0.20.2 >/dev/null
}

setup() {
  setup_host
  cargo_deny
  # Every crate of the lock file, for every platform: `cargo deny --offline` reads them all.
  cargo fetch --locked >/dev/null
  k8s_binaries
  test_prereq "Redfish test venv" scripts/redfish-venv.sh
  test_prereq "Ironic test venv" scripts/ironic-venv.sh
  test_prereq "baremetal-operator of the metal3 test" scripts/bmo-binary.sh
  test_prereq "signed shim and GRUB of the secure-boot test" scripts/secureboot-binaries.sh
}

demo() {
  # The demo needs no cluster, so no Kubernetes binaries (nor Go to build them).
  setup_host
  cargo build --release --locked
  scripts/demo.sh up "$CARGO_TARGET_DIR/release/vinod"
}

# CI (CI=true) may not pass by skipping: a missing prerequisite fails the run.
in_ci() { case "${CI:-}" in true|TRUE|True|1) return 0 ;; *) return 1 ;; esac; }

# test_prereq WHAT SCRIPT: provides a test prerequisite with SCRIPT (a no-op when cached); under
# CI a failure fails the run.
test_prereq() {
  say "$1"
  if "$2" >/dev/null; then
    return
  fi
  if in_ci; then
    say "FAILED: the $1 cannot be provided (see above); CI needs it"
    exit 1
  fi
  say "no $1: the tests that need it will be skipped"
}

# Runs every test; lists each skip (tests record them in $VINOD_TEST_SKIP_LOG) with a summary
# line, and fails under CI if anything was skipped or a committed test fixture changed.
cargo_tests() {
  local skips status=0
  skips=$(mktemp)
  VINOD_TEST_SKIP_LOG=$skips cargo test --locked --lib --bins --tests -- --test-threads=2 || status=$?
  local n
  n=$(wc -l < "$skips")
  if [ "$n" -gt 0 ]; then
    say "skipped tests:"
    cat "$skips" >&2
  fi
  echo "tests: $n skipped"
  rm -f "$skips"
  if [ "$status" != 0 ]; then
    exit "$status"
  fi
  if in_ci && [ "$n" -gt 0 ]; then
    say "FAILED: $n tests skipped under CI"
    exit 1
  fi
  fixtures_unchanged
}

# Goldens are reviewed by git: a run that rewrote a committed fixture must not pass CI.
fixtures_unchanged() {
  git -C "$repo" rev-parse --git-dir >/dev/null 2>&1 || return 0
  local changed
  changed=$(git -C "$repo" status --porcelain -- tests/fixtures)
  [ -z "$changed" ] && return 0
  if in_ci; then
    say "FAILED: the test run changed committed fixtures:"
    printf '%s\n' "$changed" >&2
    exit 1
  fi
  say "note: tests/fixtures differ from the commit (fine for a deliberate golden update):"
  printf '%s\n' "$changed" >&2
}

run_tests() {
  setup
  say "format"
  cargo fmt --all -- --check
  say "lint"
  cargo clippy --locked --all-targets -- -D warnings
  # Advisories need a database fetched from the network; deny.toml says where to run them.
  say "supply chain (licenses, bans, sources)"
  cargo deny --offline check licenses bans sources
  say "tests"
  cargo_tests
  # setup() already required root; the check keeps `test` usable if that ever changes.
  if [ "$(id -u)" = 0 ]; then
    say "packages"
    scripts/package-test.sh
  fi
}

case "${1:-}" in
  setup) setup ;;
  demo) demo ;;
  test) run_tests ;;
  *) echo "usage: $0 demo|test|setup" >&2; exit 2 ;;
esac
