# %preun: $1 is 0 on erase, 1 or more on upgrade. Like %systemd_preun: on erase, disable and
# stop the daemon (VMs belong to libvirtd and keep running). Only when systemd is running.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
	systemctl --no-reload disable --now vinod.service vinod.socket >/dev/null 2>&1 || :
fi
