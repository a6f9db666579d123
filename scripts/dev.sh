#!/usr/bin/env bash
# One entry point for developers and CI, on Debian 12 as root:
#   scripts/dev.sh demo    install what is needed, build, and run vinod on the shipped example
#                          (standalone daemon; libvirtd and the VM bridge in a network namespace)
#   scripts/dev.sh test    install what is needed and run every check and test, then build the
#                          .deb and .rpm and test them (scripts/package-test.sh)
#   scripts/dev.sh setup   only install (idempotent: skips what is already there), including the
#                          kube-apiserver, etcd and kubectl the Kubernetes tests run (built once by
#                          scripts/k8s-test-binaries.sh into /var/cache/vinod-test/k8s; needs Go)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# Builds are cached outside the repository so a fresh clone reuses them.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/vinod/target}
export DEBIAN_FRONTEND=noninteractive

# Build dependencies, then the real components the tests drive.
build_pkgs=(pkg-config libvirt-dev)
test_pkgs=(iproute2 dnsmasq-base busybox udhcpc tftp-hpa isc-dhcp-client
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils ipxe-qemu
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

setup() {
  setup_host
  k8s_binaries
}

demo() {
  # The demo needs no cluster, so no Kubernetes binaries (nor Go to build them).
  setup_host
  cargo build --release --locked
  scripts/demo.sh up "$CARGO_TARGET_DIR/release/vinod"
}

run_tests() {
  setup
  say "Redfish test venv (sushy, sushy-tools, protocol validator)"
  scripts/redfish-venv.sh >/dev/null || say "no Redfish venv: the sushy and validator tests will be skipped"
  say "format"
  cargo fmt --all -- --check
  say "lint"
  cargo clippy --locked --all-targets -- -D warnings
  say "tests"
  cargo test --locked --lib --bins --tests -- --test-threads=2
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
