//! systemd integration of the daemon: a real datagram socket as `NOTIFY_SOCKET` sees READY,
//! STATUS, WATCHDOG, RELOADING and STOPPING in order across start, SIGHUP and SIGTERM; child
//! dnsmasq processes do not inherit `NOTIFY_SOCKET`.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::host::{Daemon, NetNs, Reaper, config_text, skip_reason, vino_yaml};
use common::secret::assert_no_secret;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn spawn(prefix: &[&str], dir: &Path, manifest: &Path, socket: &Path) -> Daemon {
    let (program, args) = match prefix.split_first() {
        Some((p, rest)) => (
            p.to_string(),
            rest.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ),
        None => (env!("CARGO_BIN_EXE_vinod").to_string(), vec![]),
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    if !prefix.is_empty() {
        cmd.arg(env!("CARGO_BIN_EXE_vinod"));
    }
    cmd.args(["run", "--config"])
        .arg(dir.join("vinod.toml"))
        .arg("--standalone")
        .arg(manifest);
    cmd.env("NOTIFY_SOCKET", socket)
        .env("WATCHDOG_USEC", "1000000")
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "warn");
    Daemon(cmd.spawn().unwrap())
}

/// Reads messages until one contains `want`, for at most `limit`; returns all read.
fn until(sock: &UnixDatagram, want: &str, limit: Duration) -> Vec<String> {
    let began = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while began.elapsed() < limit {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = msg.contains(want);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }
    panic!("no {want:?} within {limit:?}; got {seen:?}");
}

#[test]
fn notifications_follow_start_reload_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bmc_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = config_text(dir.path(), "test:///default", "vinod-notify", "").replace(
        "[redfish]\n",
        &format!("[redfish]\nport = {bmc_port}\ntls = false\nlisten_address = \"127.0.0.1\"\n"),
    ) + &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n");
    std::fs::write(dir.path().join("vinod.toml"), config).unwrap();
    let manifest = dir.path().join("empty.yaml");
    std::fs::write(&manifest, "").unwrap();
    let socket = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    let daemon = spawn(&[], dir.path(), &manifest, &socket);
    let pid = Pid::from_raw(daemon.0.id() as i32);
    let start = until(&sock, "READY=1", Duration::from_secs(30));
    assert!(
        start
            .last()
            .unwrap()
            .contains("STATUS=0 Vinos, 0/0 VMs ready"),
        "{start:?}"
    );
    until(&sock, "WATCHDOG=1", Duration::from_secs(5));
    for _ in 0..3 {
        let mut bmc = std::net::TcpStream::connect(("127.0.0.1", bmc_port)).unwrap();
        std::io::Write::write_all(
            &mut bmc,
            b"GET /redfish/v1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut bmc, &mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut conn, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    std::io::Read::read_to_string(&mut conn, &mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(
        body.contains("vinod_reconcile_passes_total 1")
            || body.contains("vinod_reconcile_passes_total 2"),
        "{body}"
    );
    assert!(body.contains("# TYPE vinod_vms_ready gauge"), "{body}");
    assert!(body.contains("vinod_redfish_requests_total 3"), "{body}");

    kill(pid, Signal::SIGHUP).unwrap();
    let reload = until(&sock, "RELOADING=1", Duration::from_secs(5));
    assert!(
        reload.last().unwrap().contains("MONOTONIC_USEC="),
        "{reload:?}"
    );
    let after = until(&sock, "READY=1", Duration::from_secs(5));
    assert!(after.iter().all(|m| !m.contains("STOPPING")), "{after:?}");

    kill(pid, Signal::SIGTERM).unwrap();
    until(&sock, "STOPPING=1", Duration::from_secs(10));
    let mut daemon = daemon;
    let began = Instant::now();
    let status = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "vinod did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn children_do_not_inherit_the_notify_socket() {
    if let Some(why) = skip_reason() {
        common::prereq::skip(why);
        return;
    }
    let ns = NetNs::new("notify");
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    std::fs::write(
        dir.path().join("vinod.toml"),
        config_text(dir.path(), "test:///default", "vinod-notify2", ""),
    )
    .unwrap();
    let manifest = dir.path().join("vino.yaml");
    std::fs::write(&manifest, vino_yaml("nt", "vnt0", 66, 1, 1)).unwrap();
    let socket = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let _daemon = spawn(
        &["ip", "netns", "exec", &ns.name],
        dir.path(),
        &manifest,
        &socket,
    );
    until(&sock, "READY=1", Duration::from_secs(30));
    let pid_file = dir.path().join("run/dnsmasq/vnt0/dnsmasq.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let environ = std::fs::read(format!("/proc/{}/environ", pid.trim())).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        !environ.contains("NOTIFY_SOCKET"),
        "dnsmasq inherited NOTIFY_SOCKET"
    );
    assert!(
        environ.contains("PATH="),
        "could not read dnsmasq's environment"
    );
}

#[test]
fn secrets_never_reach_the_log_or_status() {
    if let Some(why) = skip_reason() {
        common::prereq::skip(why);
        return;
    }
    let ns = NetNs::new("nolog");
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    std::fs::write(
        dir.path().join("vinod.toml"),
        config_text(dir.path(), "test:///default", "vinod-nolog", ""),
    )
    .unwrap();
    let secret = "Kx7-never-log-this-9Qz-or-its-base64-4Hw";
    let manifest = dir.path().join("vino.yaml");
    std::fs::write(
        &manifest,
        vino_yaml("nl", "vnl0", 67, 2, 1).replace("password: pw", &format!("password: {secret}")),
    )
    .unwrap();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            env!("CARGO_BIN_EXE_vinod"),
            "run",
            "--once",
            "--config",
        ])
        .arg(dir.path().join("vinod.toml"))
        .arg("--standalone")
        .arg(&manifest)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.len() > 1000, "expected a trace-level log");
    assert_no_secret(&log, secret, "the log");
    for f in [
        "state/standalone/status.yaml",
        "state/claims.json",
        "state/standalone/lab/nl/baremetalhosts.yaml",
    ] {
        let text = std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_no_secret(&text, secret, f);
    }
    let secrets = dir.path().join("state/standalone/lab/nl/secrets.yaml");
    assert!(
        std::fs::read_to_string(&secrets).unwrap().contains(secret),
        "the credentials Secret lacks the password"
    );
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, "").unwrap();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            env!("CARGO_BIN_EXE_vinod"),
            "run",
            "--once",
            "--config",
        ])
        .arg(dir.path().join("vinod.toml"))
        .arg("--standalone")
        .arg(&empty)
        .output()
        .unwrap();
    assert!(out.status.success());
}
