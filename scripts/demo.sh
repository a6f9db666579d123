#!/usr/bin/env bash
# The README demo: vinod's standalone daemon builds examples/vino.yaml on this machine, with
# libvirtd and vinod's bridge inside a private network namespace so nothing touches the host's
# own networks. `scripts/demo.sh clean` removes everything it made.
#   usage: scripts/demo.sh up BINARY | scripts/demo.sh clean BINARY
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
NS=vinod-demo
DIR=/var/lib/vinod-demo
CONFIG="$repo/examples/demo.toml"
MANIFEST="$repo/examples/vino.yaml"
say() { printf '== %s\n' "$*" >&2; }

libvirt_prereqs() {
  getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
  id libvirt-qemu >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/libvirt \
    --shell /usr/sbin/nologin -g libvirt-qemu libvirt-qemu
  mkdir -p /var/log/libvirt /etc/libvirt "$DIR"
  touch /etc/libvirt/qemu.conf
  # Without systemd and udev, /dev/kvm stays root-only: qemu must run as root here.
  grep -q '^user = "root"' /etc/libvirt/qemu.conf || printf 'user = "root"\ngroup = "root"\n' >> /etc/libvirt/qemu.conf
}

libvirt_answers() { timeout 5 virsh -q -c qemu:///system version >/dev/null 2>&1; }

# Prints the network namespace path vinod must run in: that of the running libvirtd, or of a
# libvirtd started here inside $NS.
ensure_libvirtd() {
  if libvirt_answers; then
    local pid
    pid=$(pgrep -xo libvirtd || true)
    if [ -n "$pid" ]; then echo "/proc/$pid/ns/net"; return; fi
  fi
  libvirt_prereqs
  ip netns list | grep -qw "$NS" || { ip netns add "$NS"; ip -n "$NS" link set lo up; }
  [ -S /run/libvirt/virtlogd-sock ] || /usr/sbin/virtlogd --daemon --pid-file="$DIR/virtlogd.pid"
  ip netns exec "$NS" /usr/sbin/libvirtd --daemon --pid-file="$DIR/libvirtd.pid"
  local t0=$SECONDS
  until libvirt_answers; do
    (( SECONDS - t0 < 60 )) || { say "libvirtd did not start; see /var/log/libvirt/libvirtd.log"; exit 1; }
    sleep 0.3
  done
  echo "/run/netns/$NS"
}

up() {
  local bin=$1 netns
  netns=$(ensure_libvirtd)
  say "vinod run --standalone examples/vino.yaml --once (network namespace $netns)"
  nsenter --net="$netns" "$bin" run --standalone "$MANIFEST" --config "$CONFIG" --once
  say "status ($DIR/state/standalone/status.yaml)"
  cat "$DIR/state/standalone/status.yaml"
  say "libvirt domains"
  virsh -c qemu:///system list --all | grep -E 'Id|demo' || true
  say "bridge and DHCP server"
  nsenter --net="$netns" ip -br addr show vinod-demo0
  pgrep -a dnsmasq | grep vinod-demo0 || true
  say "published BareMetalHosts ($DIR/state/standalone/default/demo/baremetalhosts.yaml)"
  grep -E '^  name:|address:|bootMACAddress' "$DIR/state/standalone/default/demo/baremetalhosts.yaml"
  say "done: run 'scripts/demo.sh clean $bin' to remove the demo (VMs, bridge, dnsmasq, libvirtd)"
}

clean() {
  local bin=$1 netns empty
  libvirt_answers || { say "libvirtd is not running; nothing to clean in libvirt"; }
  netns=$(ensure_libvirtd)
  empty=$(mktemp)
  nsenter --net="$netns" "$bin" run --standalone "$empty" --config "$CONFIG" --once || true
  rm -f "$empty"
  virsh -q -c qemu:///system pool-destroy vinod-demo >/dev/null 2>&1 || true
  virsh -q -c qemu:///system pool-undefine vinod-demo >/dev/null 2>&1 || true
  for d in libvirtd virtlogd; do
    [ -s "$DIR/$d.pid" ] && kill -TERM "$(cat "$DIR/$d.pid")" 2>/dev/null || true
  done
  sleep 1
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$DIR"
  say "demo removed"
}

case "${1:-}" in
  up) up "${2:?binary}" ;;
  clean) clean "${2:?binary}" ;;
  *) echo "usage: $0 up|clean BINARY" >&2; exit 2 ;;
esac
