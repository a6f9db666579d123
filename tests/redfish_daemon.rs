//! `vinod run --standalone` serves the Redfish BMC: it starts with the daemon (HTTPS with a
//! self-signed certificate created 0600 and reused by the next start), takes its credentials
//! from the manifest and follows changes to it, and stops cleanly on SIGTERM.
//!
//! The manifest's Vino has no networks and no VMs, so the daemon changes nothing on the host;
//! libvirt is the test driver. Needs `curl` and dnsmasq (the daemon's DHCP supervisor checks
//! for it); skips (fails under CI) without them.

#[path = "common/prereq.rs"]
mod prereq;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

#[path = "common/secret.rs"]
mod secret;

use secret::assert_no_secret;

/// The BMC passwords the manifest gives, first and after a change.
const FIRST: &str = "first-bmc-password-9f3Kq7Lm2Xw";
const SECOND: &str = "second-bmc-password-4Tz8Rb6Yc1";

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn skip_reason() -> Option<String> {
    for bin in ["/usr/bin/curl", "/usr/sbin/dnsmasq"] {
        if !Path::new(bin).exists() {
            return Some(format!("{bin} is not installed"));
        }
    }
    None
}

fn manifest(password: &str) -> String {
    format!(
        "apiVersion: airship.airshipit.org/v1\nkind: Vino\nmetadata:\n  name: bmc-only\n  namespace: lab\nspec:\n  nodeSelector:\n    matchLabels: {{}}\n  bmcCredentials:\n    username: admin\n    password: {password}\n"
    )
}

fn config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "node_name = \"n1\"\nstate_dir = \"{d}/state\"\nrun_dir = \"{d}/run\"\n[libvirt]\nuri = \"test:///default\"\npool_name = \"pool-rfd\"\npool_path = \"{d}/pool\"\nconsole_log_dir = \"{d}/console\"\n[redfish]\nlisten_address = \"127.0.0.1\"\nadvertise_address = \"127.0.0.1\"\nport = {port}\n"
    )
}

/// Starts the daemon with a trace-level log appended to `log`.
fn start(cfg: &Path, manifest: &Path, log: &Path) -> Daemon {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Daemon(
        Command::new(env!("CARGO_BIN_EXE_vinod"))
            .args(["run", "--config"])
            .arg(cfg)
            .arg("--standalone")
            .arg(manifest)
            .env_remove("NOTIFY_SOCKET")
            .env("RUST_LOG", "trace")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

/// `curl` against the BMC, verifying its certificate: (HTTP status, body).
fn curl(port: u16, ca: &Path, path: &str, user: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "10", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .arg(format!("https://127.0.0.1:{port}{path}"));
    if let Some(u) = user {
        cmd.args(["-u", u]);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let began = Instant::now();
    while !ok() {
        assert!(began.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(mut d: Daemon) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let began = Instant::now();
    let status = loop {
        if let Some(s) = d.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "vinod did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn daemon_serves_the_bmc_with_the_manifests_credentials() {
    if let Some(reason) = skip_reason() {
        return prereq::skip(reason);
    }
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = tmp.path().join("vinod.toml");
    let man = tmp.path().join("vino.yaml");
    std::fs::write(&cfg, config(tmp.path(), port)).unwrap();
    std::fs::write(&man, manifest(FIRST)).unwrap();
    let ca: PathBuf = tmp.path().join("state/redfish/cert.pem");
    let log = tmp.path().join("vinod.log");
    let first = format!("admin:{FIRST}");
    let second = format!("admin:{SECOND}");

    let d = start(&cfg, &man, &log);
    wait_for("the BMC", Duration::from_secs(30), || {
        ca.exists() && curl(port, &ca, "/redfish/v1/", None).0 == 200
    });
    let key = tmp.path().join("state/redfish/key.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let cert = std::fs::read(&ca).unwrap();
    // The first pass hands the Vino's credentials to the BMC.
    wait_for("the credentials", Duration::from_secs(30), || {
        curl(port, &ca, "/redfish/v1/Systems", Some(&first)).0 == 200
    });
    let (_, body) = curl(port, &ca, "/redfish/v1/Systems", Some(&first));
    assert!(body.contains("\"Members@odata.count\":0"), "{body}");
    assert_eq!(
        curl(port, &ca, "/redfish/v1/Systems", Some("admin:wrong")).0,
        401
    );
    // The password changes in the manifest: the old one stops working.
    std::fs::write(&man, manifest(SECOND)).unwrap();
    wait_for("the new password", Duration::from_secs(30), || {
        curl(port, &ca, "/redfish/v1/Systems", Some(&second)).0 == 200
    });
    assert_eq!(curl(port, &ca, "/redfish/v1/Systems", Some(&first)).0, 401);
    stop(d);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the BMC stopped with the daemon"
    );

    // A restart reuses the certificate.
    let d = start(&cfg, &man, &log);
    wait_for("the BMC again", Duration::from_secs(30), || {
        curl(port, &ca, "/redfish/v1/", None).0 == 200
    });
    assert_eq!(std::fs::read(&ca).unwrap(), cert);
    stop(d);

    // The passwords came in the manifest and in every request's Authorization header.
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.len() > 1000, "expected a trace-level log");
    assert_no_secret(&log, FIRST, "the daemon's log");
    assert_no_secret(&log, SECOND, "the daemon's log");
}
