# %post: $1 is 1 on install, 2 or more on upgrade.
# vinod's state: IP claims, the Redfish certificate, DHCP leases; kept on erase. (systemd also
# creates it on start, through StateDirectory=vinod.)
# shellcheck disable=SC2174 # only vinod's own directory needs the mode
[ -d /var/lib/vinod ] || mkdir -p -m 0755 /var/lib/vinod
# Like %systemd_post: apply the preset policy to a new install (the distributions' default
# policy leaves it disabled: `systemctl enable --now vinod`). Nothing happens when systemd is
# not running (containers, image builds, chroots).
if [ "$1" -eq 1 ] && [ -d /run/systemd/system ]; then
	systemctl --no-reload preset vinod.service vinod.socket >/dev/null 2>&1 || :
fi
