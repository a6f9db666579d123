# %postun: $1 is 0 on erase, 1 or more on upgrade. Like %systemd_postun_with_restart: reload
# systemd and restart the daemon after an upgrade if it was running. Only when systemd is
# running.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart vinod.service >/dev/null 2>&1 || :
	fi
fi

# On erase: vinod's unit has KillMode=process, so the dnsmasq servers vinod starts outlive the
# daemon in the unit's cgroup (DHCP/PXE keeps working across restarts and upgrades). With the
# package gone nothing manages them: stop them. VMs belong to libvirtd and are never touched;
# the state in /var/lib/vinod is kept. The cgroup exists only under systemd.
# shellcheck disable=SC2086 # $pids: one argument per pid
if [ "$1" -eq 0 ]; then
	for procs in /sys/fs/cgroup/system.slice/vinod.service/cgroup.procs \
		/sys/fs/cgroup/unified/system.slice/vinod.service/cgroup.procs \
		/sys/fs/cgroup/systemd/system.slice/vinod.service/cgroup.procs; do
		[ -r "$procs" ] || continue
		pids=$(cat "$procs")
		[ -n "$pids" ] || continue
		kill -TERM $pids 2>/dev/null || :
		tries=50
		while [ "$tries" -gt 0 ] && [ -n "$(cat "$procs" 2>/dev/null)" ]; do
			sleep 0.1
			tries=$((tries - 1))
		done
		pids=$(cat "$procs" 2>/dev/null)
		[ -z "$pids" ] || kill -KILL $pids 2>/dev/null || :
	done
fi
