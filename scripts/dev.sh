#!/usr/bin/env bash
# One entry point for developers and CI, on Debian 12 as root:
#   scripts/dev.sh demo    install what is needed, build, and run vinod on the shipped example
#   scripts/dev.sh test    install what is needed and run every check and test
#   scripts/dev.sh setup   only install (idempotent: skips what is already there)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# Builds are cached outside the repository so a fresh clone reuses them.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/vinod/target}
export DEBIAN_FRONTEND=noninteractive

# Build dependencies, then the real components the tests drive.
build_pkgs=(pkg-config libvirt-dev)
test_pkgs=(iproute2 dnsmasq-base busybox udhcpc tftp-hpa isc-dhcp-client
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils ipxe-qemu)

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

setup() {
  need_root
  check_rust
  install_pkgs "${build_pkgs[@]}" "${test_pkgs[@]}"
}

demo() {
  setup
  cargo build --release --locked
  local bin="$CARGO_TARGET_DIR/release/vinod"
  say "vinod plan on examples/vino.yaml (no root, libvirt or cluster needed)"
  "$bin" plan --vino examples/vino.yaml --node demo-host \
    --node-labels vino.airshipit.org/demo=true --node-address 192.0.2.10 \
    --config packaging/vinod.toml
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
  cargo test --locked --all-targets -- --test-threads=2
}

case "${1:-}" in
  setup) setup ;;
  demo) demo ;;
  test) run_tests ;;
  *) echo "usage: $0 demo|test|setup" >&2; exit 2 ;;
esac
