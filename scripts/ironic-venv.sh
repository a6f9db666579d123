#!/usr/bin/env bash
# Creates (idempotently) the Python environment the Ironic test runs: a pinned OpenStack Ironic
# (the all-in-one `ironic` service, `ironic-dbsync`) and python-ironicclient.
#
#   scripts/ironic-venv.sh           create or complete the venv, print its path
#
# The venv lives outside the repository (IRONIC_VENV, default /var/cache/vinod/ironic-venv). A
# stamp file records the requirement list it was built from; a changed list rebuilds it.
set -euo pipefail
. "$(dirname "$0")/venv-lib.sh"

venv=${IRONIC_VENV:-/var/cache/vinod/ironic-venv}
# Versions verified together on Debian 12 (Python 3.11): see docs/redfish.md.
reqs=(
  "ironic==39.0.0"
  "python-ironicclient==6.3.0"
)
want=$(printf '%s\n' "${reqs[@]}")

if ! venv_ready "$venv" "$want" "ironic, ironicclient, sushy" || [ ! -x "$venv/bin/ironic" ]; then
  venv_build "$venv" "$want" python3-venv -- "${reqs[@]}"
fi
echo "$venv"
