#!/usr/bin/env bash
# Creates (idempotently) the Python environment the Ironic test runs: a pinned OpenStack Ironic
# (the all-in-one `ironic` service, `ironic-dbsync`) and python-ironicclient.
#
#   scripts/ironic-venv.sh           create or complete the venv, print its path
#
# The venv lives outside the repository (IRONIC_VENV, default /var/cache/vinod/ironic-venv). A
# stamp file records the requirement list it was built from; a changed list rebuilds it.
set -euo pipefail

venv=${IRONIC_VENV:-/var/cache/vinod/ironic-venv}
# Versions verified together on Debian 12 (Python 3.11): see docs/redfish.md.
reqs=(
  "ironic==39.0.0"
  "python-ironicclient==6.3.0"
)
stamp="$venv/.vinod-requirements"
want=$(printf '%s\n' "${reqs[@]}")

say() { printf '== %s\n' "$*" >&2; }

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
  && [ -x "$venv/bin/ironic" ] && [ -x "$venv/bin/ironic-dbsync" ] \
  && "$venv/bin/python" -c 'import ironic, ironicclient, sushy' 2>/dev/null; then
  echo "$venv"
  exit 0
fi

missing=()
for p in python3-venv; do
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

say "building the Ironic test venv in $venv"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
/usr/bin/python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q "${reqs[@]}"
printf '%s\n' "$want" > "$stamp"
echo "$venv"
