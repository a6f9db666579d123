//! The BMC through a restart of vinod, as `vinod.socket` arranges it: the listening socket is
//! held outside the daemon (here by the test, as systemd would) and handed to each start on
//! descriptor 3 with `LISTEN_PID`/`LISTEN_FDS`. A client polls a VM's power state back to back
//! while vinod is stopped and started again: no request fails, and the ones sent while no
//! vinod ran were answered by the next one.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::bmc_client::authorized_get;
use common::host::{Daemon, NetNs, Reaper, config_text, skip_reason, vino_yaml, wait_for};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};

const SYSTEM: &str = "/redfish/v1/Systems/lab.rst.worker-0";

/// One authorized GET of the VM on a fresh connection: its status (0 if none came) and time.
fn get_power(addr: SocketAddr) -> (u16, Duration) {
    authorized_get(addr, SYSTEM, "admin", "pw", Duration::from_secs(20))
}

/// Starts vinod in `ns` with `listener` as its descriptor 3, as systemd passes a socket.
fn start(ns: &NetNs, listener: &TcpListener, config: &Path, manifest: &Path, log: &Path) -> Daemon {
    let fd = listener.as_raw_fd();
    let onto_3 = if fd == 3 {
        String::new()
    } else {
        format!("exec 3<&{fd} {fd}<&-; ")
    };
    let script = format!(
        "{onto_3}LISTEN_PID=$$ LISTEN_FDS=1 exec {} run --config {} --standalone {}",
        env!("CARGO_BIN_EXE_vinod"),
        config.display(),
        manifest.display()
    );
    let child = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .args(["sh", "-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        )
        .spawn()
        .unwrap();
    Daemon(child)
}

#[test]
fn requests_wait_through_a_restart_on_a_passed_socket() {
    if let Some(why) = skip_reason() {
        return common::prereq::skip(why);
    }
    let ns = NetNs::new("rst");
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    // The socket systemd would hold: the test's, inherited by each vinod.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    fcntl(&listener, FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
    let addr = listener.local_addr().unwrap();
    let config = dir.path().join("vinod.toml");
    let text = config_text(dir.path(), "test:///default", "vinod-rst", "").replace(
        "[redfish]\n",
        &format!("[redfish]\ntls = false\nport = {}\n", addr.port()),
    );
    std::fs::write(&config, text).unwrap();
    let manifest = dir.path().join("vinos.yaml");
    std::fs::write(&manifest, vino_yaml("rst", "vrs0", 95, 1, 1)).unwrap();
    let log = dir.path().join("daemon.log");

    let mut first = start(&ns, &listener, &config, &manifest, &log);
    wait_for("the VM on the BMC", Duration::from_secs(30), || {
        get_power(addr).0 == 200
    });

    // A client polling back to back, on fresh connections, through the restart.
    let stop = Arc::new(AtomicBool::new(false));
    let polling = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                seen.push(get_power(addr));
            }
            seen
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let pid = nix::unistd::Pid::from_raw(first.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(
        first.0.wait().unwrap().success(),
        "vinod did not stop cleanly"
    );
    let down = Instant::now();
    // Down for a moment, as between the stop and the start of a restart.
    std::thread::sleep(Duration::from_millis(700));
    let _second = start(&ns, &listener, &config, &manifest, &log);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let seen = polling.join().unwrap();
    let downtime = down.elapsed() - Duration::from_secs(2);

    let failed: Vec<_> = seen.iter().filter(|(status, _)| *status != 200).collect();
    assert!(
        failed.is_empty(),
        "failed requests through the restart: {failed:?}"
    );
    let slowest = seen.iter().map(|(_, t)| *t).max().unwrap();
    assert!(
        slowest >= Duration::from_millis(500),
        "no request waited through the restart (slowest {slowest:?}, down {downtime:?})"
    );
    println!(
        "{} requests through a restart, none failed; the longest waited {slowest:?}",
        seen.len()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("Redfish BMC on the socket systemd passed")
            .count(),
        2,
        "both vinods took the passed socket"
    );
}
