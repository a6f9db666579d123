#!/usr/bin/env bash
# Builds the .deb and .rpm packages and tests them for real, as root on Debian 12:
#   - the .deb: contents, control fields and maintainer scripts; lintian (fails on E: only);
#     install on this machine, the installed binary, configuration and systemd unit
#     (systemd-analyze verify), an upgrade that keeps a changed conffile, remove (state kept,
#     left-over DHCP servers stopped) and purge (nothing left; VM volumes kept);
#   - the .rpm: contents, requirements, scriptlets, and install, upgrade and erase in a scratch
#     root (rpm --root) where the scriptlets run for real.
# Installs what it needs first (cargo-deb, cargo-generate-rpm, rpm, lintian, systemd) unless
# present. Refuses to run when vinod is installed or its paths exist on this machine; puts the
# machine back as it found it, also on failure. Honours CARGO_TARGET_DIR.
set -Eeuo pipefail

CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export DEBIAN_FRONTEND=noninteractive
target=${CARGO_TARGET_DIR:-$repo/target}
started=$SECONDS
checks=0

say() { printf '== %s\n' "$*" >&2; }
fail() {
  printf 'package test FAILED: %s\n' "$*" >&2
  exit 1
}
ok() {
  checks=$((checks + 1))
  printf '   ok: %s\n' "$*" >&2
}
# check DESCRIPTION COMMAND...: runs COMMAND, fails with DESCRIPTION if it fails.
check() {
  local what=$1
  shift
  "$@" || fail "$what"
  ok "$what"
}
absent() { [ ! -e "$1" ] && [ ! -L "$1" ]; }
lacks() { ! grep -qE "$1" "$2"; } # lacks REGEX FILE
not_installed() { ! dpkg-query -W -f='${Status}' vinod 2>/dev/null | grep -qv 'not-installed'; }

[ "$(id -u)" = 0 ] || fail "run as root: it installs the packages on this machine"

# One run at a time on a machine: they install the same package.
exec 9>/run/lock/vinod-package-test.lock
flock -w 900 9 || fail "another package test has held /run/lock/vinod-package-test.lock for 15 minutes"

# --- Never touch an existing installation ---------------------------------------------------
# The paths the package installs or that only an installation creates.
installed_paths=(/usr/bin/vinod /etc/vino /usr/lib/systemd/system/vinod.service
  /usr/lib/systemd/system/vinod.socket /usr/share/vinod /usr/share/doc/vinod
  /etc/systemd/system/vinod.service /etc/systemd/system/multi-user.target.wants/vinod.service
  /etc/systemd/system/vinod.socket /etc/systemd/system/sockets.target.wants/vinod.socket)
# The directories purge deletes. Tests and hand-run daemons create them too (they are the
# configuration's defaults); when they exist they are set aside and put back afterwards.
data_dirs=(/var/lib/vinod /run/vinod /var/log/vinod)
if ! not_installed; then
  fail "a vinod package is installed on this machine ($(dpkg-query -W -f='${Version} ${Status}' vinod)); this test installs and purges vinod, so it will not run here. Remove it first if it is disposable: dpkg --purge vinod"
fi
for p in "${installed_paths[@]}"; do
  absent "$p" || fail "$p exists on this machine; this test installs and purges vinod and would change or delete it, so it will not run here"
done

# --- Clean-up, also on failure --------------------------------------------------------------
work=$(mktemp -d /tmp/vinod-package-test.XXXXXX)
installed=no
set_aside=()
leftover_pid=
fake_cgroup=
cleanup() {
  local rc=$?
  trap - ERR
  set +e
  if [ -n "$leftover_pid" ]; then kill -KILL "$leftover_pid" 2>/dev/null; wait "$leftover_pid" 2>/dev/null; fi
  if [ -n "$fake_cgroup" ] && [ -d "$fake_cgroup" ]; then
    rmdir "$fake_cgroup" "$(dirname "$fake_cgroup")" 2>/dev/null
  fi
  if [ "$installed" = yes ]; then
    say "clean-up: purging the vinod package this test installed"
    timeout 120 dpkg --purge vinod >/dev/null 2>&1
  fi
  # /etc/vino did not exist before the test (checked above); the data directories either did
  # not exist or were set aside.
  rm -rf /etc/vino "${data_dirs[@]}"
  local d
  for d in "${set_aside[@]}"; do
    mv "$work/set-aside$d" "$d" && say "put $d back"
  done
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'fail "line $LINENO: \"$BASH_COMMAND\" exited $?"' ERR

for d in "${data_dirs[@]}"; do
  if ! absent "$d"; then
    mkdir -p "$work/set-aside$(dirname "$d")"
    mv "$d" "$work/set-aside$d"
    set_aside+=("$d")
    say "set $d aside for the test; it is put back at the end"
  fi
done

# --- Tools ----------------------------------------------------------------------------------
install_apt() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    timeout 600 apt-get update -qq
    timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}
install_cargo_tool() { # crate subcommand version
  if ! cargo "$2" --version 2>/dev/null | grep -qF " $3"; then
    say "installing $1 $3 (takes minutes)"
    timeout 1800 cargo install --locked --quiet "$1" --version "$3"
  fi
}
command -v cargo >/dev/null || fail "cargo not found: install Rust >= 1.89"
# rpm, lintian, systemd-analyze (systemd); dpkg -i needs the package's dependencies present.
install_apt rpm lintian systemd dnsmasq-base libvirt0
install_cargo_tool cargo-deb deb "$CARGO_DEB_VERSION"
install_cargo_tool cargo-generate-rpm generate-rpm "$CARGO_GENERATE_RPM_VERSION"

# --- Build ----------------------------------------------------------------------------------
pkgid=$(cargo pkgid --offline 2>/dev/null || cargo pkgid)
version=${pkgid##*[#@]}
say "building the packages of vinod $version (target directory $target)"
mkdir -p "$target/debian" "$target/generate-rpm"
deb=$target/debian/vinod_${version}-1_amd64.deb
deb2=$work/vinod_${version}-2_amd64.deb
rpm=$target/generate-rpm/vinod-${version}-1.x86_64.rpm
rpm2=$work/vinod-${version}-2.x86_64.rpm
rm -f "$deb" "$rpm"
build_started=$SECONDS
# The next package revision of the same build, for the upgrade tests, comes first: each
# `cargo deb` deletes the other versions' .deb files from its target directory.
timeout 3600 cargo deb --locked --quiet --deb-revision 2 --output "$deb2"
timeout 300 cargo deb --no-build --quiet --output "$deb"
timeout 300 cargo generate-rpm --output "$rpm"
timeout 300 cargo generate-rpm --output "$rpm2" --set-metadata 'release = "2"'
say "built in $((SECONDS - build_started)) s: $deb ($(stat -c %s "$deb") bytes), $rpm ($(stat -c %s "$rpm") bytes)"

# --- .deb: contents and metadata ------------------------------------------------------------
say ".deb contents and control fields"
dpkg-deb -I "$deb" >"$work/deb-info"
dpkg-deb -c "$deb" >"$work/deb-contents"
cat "$work/deb-info" >&2
listed() { grep -qE " \./${1#/}\$" "$work/deb-contents"; }
for f in /usr/bin/vinod /usr/lib/systemd/system/vinod.service /usr/lib/systemd/system/vinod.socket /etc/vino/vinod.toml \
  /usr/share/vinod/crd/airship.airshipit.org_vinoes.yaml /usr/share/vinod/crd/metal3.io_baremetalhosts.yaml \
  /usr/share/vinod/crd/airship.airshipit.org_vinoipclaims.yaml /usr/share/vinod/rbac/vinod-clusterroles.yaml \
  /usr/share/vinod/rbac/vinod-bindings.yaml /usr/share/vinod/rbac/vinod-node-scope.yaml \
  /usr/share/doc/vinod/README.md /usr/share/doc/vinod/packaging.md /usr/share/doc/vinod/copyright \
  /usr/share/doc/vinod/changelog.Debian.gz; do
  check "the .deb contains $f" listed "$f"
done
check "/usr/bin/vinod is 0755 in the .deb" grep -qE '^-rwxr-xr-x .* \./usr/bin/vinod$' "$work/deb-contents"
field() { dpkg-deb -f "$deb" "$1"; }
check "Package: vinod" [ "$(field Package)" = vinod ]
check "Version: $version-1" [ "$(field Version)" = "$version-1" ]
check "Section: admin" [ "$(field Section)" = admin ]
check "Maintainer is vinod maintainers" [ "$(field Maintainer)" = "vinod maintainers <vinod@airshipit.invalid>" ]
depends=$(field Depends)
for d in dnsmasq-base libvirt0 libc6; do
  check "Depends lists $d ($depends)" grep -qw "$d" <<<"$depends"
done
recommends=$(field Recommends)
for d in libvirt-daemon-system qemu-system-x86; do
  check "Recommends lists $d" grep -qw "$d" <<<"$recommends"
done
dpkg-deb -e "$deb" "$work/control"
check "conffiles lists /etc/vino/vinod.toml" grep -qx /etc/vino/vinod.toml "$work/control/conffiles"
check "postinst creates /var/lib/vinod 0755" grep -q 'install -d -m 0755 /var/lib/vinod' "$work/control/postinst"
check "postinst enables the unit" grep -q 'deb-systemd-helper enable vinod.service' "$work/control/postinst"
check "postinst restarts a running daemon on upgrade (try-restart)" grep -q 'deb-systemd-invoke try-restart vinod.service' "$work/control/postinst"
# shellcheck disable=SC2016 # literal $ in the patterns
check "postinst does not start the daemon on a fresh install" lacks 'deb-systemd-invoke (start|\$_dh_action)' "$work/control/postinst"
# shellcheck disable=SC2016
check "prerm stops the daemon on remove only" grep -q '"\$1" = remove ]; then' "$work/control/prerm"
check "postrm deletes the state on purge" grep -q 'rm -rf /var/lib/vinod' "$work/control/postrm"
check "postrm drops the enable symlinks on purge" grep -q 'deb-systemd-helper purge vinod.service' "$work/control/postrm"
for s in postinst prerm postrm; do
  check "$s is valid sh" sh -n "$work/control/$s"
done

say "lintian"
lintian_rc=0
timeout 600 lintian "$deb" >"$work/lintian" 2>&1 || lintian_rc=$?
cat "$work/lintian" >&2
# 0: clean; 2: tags at the --fail-on level (errors); 1: lintian itself failed.
[ "$lintian_rc" != 1 ] || fail "lintian did not run"
if grep -q '^E: ' "$work/lintian"; then fail "lintian reports errors (E: lines above)"; fi
ok "lintian: no errors ($(grep -c '^W: ' "$work/lintian" || true) warnings, see docs/packaging.md)"

# --- .deb: install ----------------------------------------------------------------------------
say "dpkg -i $deb"
installed=yes
timeout 120 dpkg -i "$deb" >&2
check "vinod $version-1 is installed" [ "$(dpkg-query -W -f='${Version} ${Status}' vinod)" = "$version-1 install ok installed" ]
check "vinod --version prints $version" [ "$(vinod --version)" = "vinod $version" ]
check "vinod version prints $version" [ "$(vinod version)" = "vinod $version" ]
check "/usr/bin/vinod is the one on PATH" [ "$(command -v vinod)" = /usr/bin/vinod ]
check "/etc/vino/vinod.toml is the shipped file" cmp -s /etc/vino/vinod.toml packaging/vinod.toml
check "vinod check-config accepts /etc/vino/vinod.toml" vinod check-config
check "the unit is installed unchanged" cmp -s /usr/lib/systemd/system/vinod.service systemd/vinod.service
check "the socket unit is installed unchanged" cmp -s /usr/lib/systemd/system/vinod.socket systemd/vinod.socket
check "the CRD manifests are installed" cmp -s /usr/share/vinod/crd/airship.airshipit.org_vinoes.yaml packaging/crd/airship.airshipit.org_vinoes.yaml
check "/var/lib/vinod exists, 0755 root" [ "$(stat -c '%a %U' /var/lib/vinod)" = "755 root" ]
wants=/etc/systemd/system/multi-user.target.wants/vinod.service
check "the unit is enabled ($wants)" [ "$(readlink -f "$wants")" = /usr/lib/systemd/system/vinod.service ]
socket_wants=/etc/systemd/system/sockets.target.wants/vinod.socket
check "the socket unit is enabled ($socket_wants)" [ "$(readlink -f "$socket_wants")" = /usr/lib/systemd/system/vinod.socket ]
check "dpkg --verify vinod is clean" dpkg --verify vinod

say "systemd-analyze verify /usr/lib/systemd/system/vinod.service"
verify_rc=0
timeout 60 systemd-analyze verify /usr/lib/systemd/system/vinod.service /usr/lib/systemd/system/vinod.socket >"$work/verify" 2>&1 || verify_rc=$?
cat "$work/verify" >&2
check "systemd-analyze verify exits 0" [ "$verify_rc" = 0 ]
check "systemd-analyze verify has nothing to say about vinod.service and vinod.socket" lacks vinod "$work/verify"

# --- .deb: upgrade ----------------------------------------------------------------------------
say "upgrade to $version-2 with a locally changed conffile"
echo '# changed by the administrator' >>/etc/vino/vinod.toml
echo 'claims' >/var/lib/vinod/claims.yaml
timeout 120 dpkg -i "$deb2" >&2
check "vinod $version-2 is installed" [ "$(dpkg-query -W -f='${Version} ${Status}' vinod)" = "$version-2 install ok installed" ]
check "the changed conffile is kept" grep -q '^# changed by the administrator$' /etc/vino/vinod.toml
check "the state is kept" [ -f /var/lib/vinod/claims.yaml ]
check "the unit is still enabled" [ -L "$wants" ]

# --- .deb: remove -----------------------------------------------------------------------------
# Without systemd as PID 1 nothing else can put a process into vinod.service's cgroup: do what
# systemd leaves behind after stopping the unit (KillMode=process), with a real dnsmasq, in the
# named v1 hierarchy systemd uses on hybrid hosts. On a host run by systemd this is skipped.
if [ ! -d /run/systemd/system ] && [ -w /sys/fs/cgroup/systemd/cgroup.procs ] &&
  absent /sys/fs/cgroup/systemd/system.slice; then
  fake_cgroup=/sys/fs/cgroup/systemd/system.slice/vinod.service
  mkdir -p "$fake_cgroup"
  unshare -n /usr/sbin/dnsmasq --keep-in-foreground --port=0 --conf-file=/dev/null --pid-file= &
  leftover_pid=$!
  echo "$leftover_pid" >"$fake_cgroup/cgroup.procs"
  check "a left-over dnsmasq runs in vinod.service's cgroup" grep -qx "$leftover_pid" "$fake_cgroup/cgroup.procs"
else
  say "not checking that remove stops left-over DHCP servers: no free systemd cgroup hierarchy here"
fi
mkdir -p /run/vinod/dnsmasq /var/log/vinod/console
echo x >/run/vinod/dnsmasq/br0.conf
echo x >/var/log/vinod/console/vm.log
say "dpkg -r vinod"
timeout 120 dpkg -r vinod >&2
check "vinod is removed, its conffile kept" [ "$(dpkg-query -W -f='${Status}' vinod)" = "deinstall ok config-files" ]
check "/usr/bin/vinod is gone" absent /usr/bin/vinod
check "the unit is masked until purge" [ "$(readlink /etc/systemd/system/vinod.service)" = /dev/null ]
check "the unit file is gone" absent /usr/lib/systemd/system/vinod.service
check "the socket unit file is gone" absent /usr/lib/systemd/system/vinod.socket
check "/etc/vino/vinod.toml is kept, with the change" grep -q '^# changed by the administrator$' /etc/vino/vinod.toml
check "the state in /var/lib/vinod is kept" [ -f /var/lib/vinod/claims.yaml ]
if [ -n "$leftover_pid" ]; then
  # Gone, or a zombie this script has not reaped yet.
  stopped() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || echo gone)
    [ "$state" = Z ] || [ "$state" = gone ]
  }
  check "remove stopped the left-over dnsmasq" stopped "$leftover_pid"
  wait "$leftover_pid" 2>/dev/null || true
  leftover_pid=
  rmdir "$fake_cgroup" "$(dirname "$fake_cgroup")"
  fake_cgroup=
fi

# --- .deb: purge ------------------------------------------------------------------------------
say "dpkg --purge vinod"
timeout 120 dpkg --purge vinod >&2
installed=no
check "vinod is purged" not_installed
while read -r _ _ _ _ _ path _; do
  path=/${path#./}
  case "$path" in */) continue ;; esac
  absent "$path" || fail "purge left $path"
done <"$work/deb-contents"
ok "purge left none of the package's files"
for p in /etc/vino /var/lib/vinod /run/vinod /var/log/vinod "$wants" /etc/systemd/system/vinod.service \
  "$socket_wants" /etc/systemd/system/vinod.socket \
  /var/lib/systemd/deb-systemd-helper-enabled/vinod.socket.dsh-also \
  /var/lib/systemd/deb-systemd-helper-enabled/sockets.target.wants/vinod.socket \
  /var/lib/systemd/deb-systemd-helper-masked/vinod.socket \
  /var/lib/systemd/deb-systemd-helper-enabled/vinod.service.dsh-also \
  /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/vinod.service \
  /var/lib/systemd/deb-systemd-helper-masked/vinod.service; do
  check "purge left no $p" absent "$p"
done

say "dpkg -i, then dpkg --purge with a VM volume in the default pool"
installed=yes
timeout 120 dpkg -i "$deb" >/dev/null
mkdir -p /var/lib/vinod/pool
echo disk >/var/lib/vinod/pool/vm-0.qcow2
echo claims >/var/lib/vinod/claims.yaml
timeout 120 dpkg --purge vinod >&2
installed=no
check "purge keeps the pool with its volume" [ -f /var/lib/vinod/pool/vm-0.qcow2 ]
check "purge deletes the rest of /var/lib/vinod" [ "$(ls -A /var/lib/vinod)" = pool ]
rm -rf /var/lib/vinod

# --- .rpm: contents, requirements, scriptlets ---------------------------------------------------
say ".rpm metadata"
rpm -qip "$rpm" >&2
rpm -qlp "$rpm" >"$work/rpm-files"
for f in /usr/bin/vinod /usr/lib/systemd/system/vinod.service /usr/lib/systemd/system/vinod.socket /etc/vino/vinod.toml \
  /usr/share/vinod/crd/airship.airshipit.org_vinoes.yaml /usr/share/vinod/crd/metal3.io_baremetalhosts.yaml \
  /usr/share/vinod/crd/airship.airshipit.org_vinoipclaims.yaml /usr/share/vinod/rbac/vinod-node-scope.yaml \
  /usr/share/doc/vinod/README.md /usr/share/doc/vinod/packaging.md; do
  check "the .rpm contains $f" grep -qx "$f" "$work/rpm-files"
done
rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$rpm" >"$work/rpm-flags"
check "/etc/vino/vinod.toml is %config(noreplace)" grep -qx '/etc/vino/vinod.toml cn' "$work/rpm-flags"
rpm -qp --requires "$rpm" >"$work/rpm-requires"
cat "$work/rpm-requires" >&2
check "Requires: dnsmasq" grep -qx dnsmasq "$work/rpm-requires"
check "Requires: libvirt-libs" grep -qx libvirt-libs "$work/rpm-requires"
rpm -qp --scripts "$rpm" >"$work/rpm-scripts"
cat "$work/rpm-scripts" >&2
for s in postinstall preuninstall postuninstall; do
  check "the .rpm has a $s scriptlet" grep -q "^$s scriptlet" "$work/rpm-scripts"
done
check "rpm -K: digests OK" rpm -Kv --nosignature "$rpm"

# --- .rpm: install, upgrade and erase in a scratch root -----------------------------------------
# rpm runs the scriptlets chrooted in the scratch root. It gets a shell (dash), mkdir, their
# libraries, /dev/null, and a systemctl that only logs its arguments. Without /run/systemd/system the scriptlets must
# not call it; with it, they must call it as systemd's %systemd_* macros would.
say "rpm install, upgrade and erase in a scratch root"
root=$work/rpmroot
mkdir -p "$root/bin" "$root/usr/bin"
cp /bin/dash "$root/bin/sh"
cp /bin/mkdir "$root/bin/mkdir"
for lib in $(ldd /bin/dash /bin/mkdir | grep -o '/[^ ]*\.so[^ ]*' | sort -u); do
  mkdir -p "$root$(dirname "$lib")"
  cp "$lib" "$root$lib"
done
mkdir -p "$root/dev"
mknod -m 666 "$root/dev/null" c 1 3
printf '#!/bin/sh\necho "$*" >>/systemctl.log\n' >"$root/usr/bin/systemctl"
chmod 755 "$root/usr/bin/systemctl"
timeout 60 rpm --root "$root" --initdb
rpm_in_root() { # log-name rpm-arguments...
  local log=$work/rpm-$1
  shift
  timeout 120 rpm --root "$root" "$@" >"$log" 2>&1 || {
    cat "$log" >&2
    fail "rpm --root $root $* failed"
  }
  cat "$log" >&2
  check "no scriptlet failed (rpm $*)" lacks '[Ss]criptlet failed|error:' "$log"
}

rpm_in_root install -ivh --nodeps "$rpm"
for f in /usr/bin/vinod /etc/vino/vinod.toml /usr/lib/systemd/system/vinod.service /usr/lib/systemd/system/vinod.socket \
  /usr/share/vinod/crd/airship.airshipit.org_vinoes.yaml /usr/share/vinod/crd/metal3.io_baremetalhosts.yaml; do
  check "$f landed" [ -s "$root$f" ]
done
check "/usr/bin/vinod landed executable and runs" [ "$("$root/usr/bin/vinod" version)" = "vinod $version" ]
check "/var/lib/vinod landed, 0755" [ "$(stat -c %a "$root/var/lib/vinod")" = 755 ]
check "rpm -V is clean in the scratch root (files; dependencies are not there)" rpm --root "$root" -V --nodeps vinod
echo '# changed by the administrator' >>"$root/etc/vino/vinod.toml"
echo claims >"$root/var/lib/vinod/claims.yaml"
rpm_in_root upgrade -Uvh --nodeps "$rpm2"
check "release 2 is installed" [ "$(rpm --root "$root" -q --qf '%{VERSION}-%{RELEASE}' vinod)" = "$version-2" ]
check "the changed configuration is kept on upgrade" grep -q '^# changed by the administrator$' "$root/etc/vino/vinod.toml"
rpm_in_root erase -e vinod
check "erase removed /usr/bin/vinod" absent "$root/usr/bin/vinod"
check "erase removed the unit" absent "$root/usr/lib/systemd/system/vinod.service"
check "erase saved the changed configuration as .rpmsave" [ -f "$root/etc/vino/vinod.toml.rpmsave" ]
check "erase kept the state in /var/lib/vinod" [ -f "$root/var/lib/vinod/claims.yaml" ]
check "without a running systemd no scriptlet called systemctl" absent "$root/systemctl.log"

mkdir -p "$root/run/systemd/system"
rpm_in_root install-systemd -ivh --nodeps "$rpm"
check "install under systemd: preset, no start" [ "$(cat "$root/systemctl.log")" = "--no-reload preset vinod.service vinod.socket" ]
rpm_in_root upgrade-systemd -Uvh --nodeps "$rpm2"
check "upgrade under systemd: daemon-reload, try-restart" [ "$(tail -n +2 "$root/systemctl.log")" = "$(printf 'daemon-reload\ntry-restart vinod.service')" ]
rpm_in_root erase-systemd -e vinod
check "erase under systemd: disable --now, daemon-reload" [ "$(tail -n +4 "$root/systemctl.log")" = "$(printf -- '--no-reload disable --now vinod.service vinod.socket\ndaemon-reload')" ]

say "package test: all $checks checks passed in $((SECONDS - started)) s (.deb $(stat -c %s "$deb") bytes, .rpm $(stat -c %s "$rpm") bytes)"
