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
. "$(dirname "$0")/venv-lib.sh"

venv=${REDFISH_VENV:-/var/cache/vinod/venv}
# Versions verified together on Debian 12 (libvirt 9.0): see docs/redfish.md.
reqs=(
  "sushy==5.14.0"
  "sushy-tools==2.2.0"
  "libvirt-python==12.8.0"
  "pytest==8.4.2"
  "redfish-protocol-validator==1.3.2"
)
want=$(printf '%s\n' "${reqs[@]}")

if ! venv_ready "$venv" "$want" "sushy, libvirt, pytest"; then
  # libvirt-python builds from source: it needs a compiler, Python headers and libvirt's.
  venv_build "$venv" "$want" python3-venv python3-dev gcc pkg-config libvirt-dev -- "${reqs[@]}"
fi
echo "$venv"
