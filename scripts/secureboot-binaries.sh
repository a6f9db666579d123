#!/usr/bin/env bash
# Provides (idempotently) the distribution's signed network boot chain that the UEFI test boots
# under secure boot: Debian's shim (signed by Microsoft's UEFI CA, which OVMF's `ms` variable
# template enrolls) and Debian's signed network GRUB. The packages are downloaded from the
# distribution's archive and unpacked, not installed (installing them would run grub-install
# on this machine), into a cache outside the repository.
#
#   scripts/secureboot-binaries.sh     print the directory holding shimx64.efi and grubx64.efi
#
# The directory is VINOD_SECUREBOOT_DIR (default /var/cache/vinod-test/secureboot); VERSIONS
# in it names the packages the files came from.
set -euo pipefail

dir=${VINOD_SECUREBOOT_DIR:-/var/cache/vinod-test/secureboot}
pkgs=(shim-signed grub-efi-amd64-signed)

if [ -s "$dir/shimx64.efi" ] && [ -s "$dir/grubx64.efi" ] && [ -s "$dir/VERSIONS" ]; then
  echo "$dir"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt downloads as its own user: let it write here.
chown _apt "$work" 2>/dev/null || true
if ! (cd "$work" && apt-get download -qq "${pkgs[@]}") >&2; then
  apt-get update -qq >&2
  (cd "$work" && apt-get download -qq "${pkgs[@]}") >&2
fi
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$work/root"
  dpkg-deb -W --showformat='${Package} ${Version}\n' "$deb" >> "$work/VERSIONS"
done
mkdir -p "$dir"
install -m 0644 "$work/root/usr/lib/shim/shimx64.efi.signed" "$dir/shimx64.efi"
install -m 0644 "$work/root/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed" "$dir/grubx64.efi"
# Written last: its presence says the directory is complete.
install -m 0644 "$work/VERSIONS" "$dir/VERSIONS"
echo "$dir"
