#!/usr/bin/env bash
# Creates (idempotently) the Python environment the Redfish interoperability tests, the
# protocol validator and the benchmark use: the sushy client, the sushy-tools emulator (the
# benchmark's baseline) with libvirt-python, pytest and DMTF's protocol validator.
#
#   scripts/redfish-venv.sh          create or complete the venv, print its path
#
# The venv lives outside the repository (REDFISH_VENV, default /var/cache/vinod/venv). A stamp
# file records the requirement list it was built from; a changed list rebuilds it.
set -euo pipefail

venv=${REDFISH_VENV:-/var/cache/vinod/venv}
# Versions verified together on Debian 12 (libvirt 9.0): see docs/redfish.md.
reqs=(
  "sushy==5.14.0"
  "sushy-tools==2.2.0"
  "libvirt-python==12.8.0"
  "pytest==8.4.2"
  "redfish-protocol-validator==1.3.2"
)
stamp="$venv/.vinod-requirements"
want=$(printf '%s\n' "${reqs[@]}")

say() { printf '== %s\n' "$*" >&2; }

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c 'import sushy, libvirt, pytest' 2>/dev/null; then
  echo "$venv"
  exit 0
fi

# libvirt-python builds from source: it needs a compiler, Python headers and libvirt's.
missing=()
for p in python3-venv python3-dev gcc pkg-config libvirt-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "missing ${missing[*]}: install them as root"
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

say "building the Redfish test venv in $venv"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
# Debian's interpreter: its headers are installed above, whatever python3 is first on PATH.
/usr/bin/python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "${reqs[@]}"
printf '%s\n' "$want" > "$stamp"
echo "$venv"
