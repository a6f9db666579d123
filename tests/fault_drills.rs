//! Fault drills against the standalone daemon on a real libvirtd (root only): dnsmasq killed,
//! libvirtd restarted, an unreadable manifest and an invalid Vino — the VMs keep running, the
//! lease survives, the state recovers. Every wait is bounded.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::host::{
    Daemon, Reaper, config_text, skip_reason, standalone_daemon, vino_yaml, wait_for,
};
use common::libvirtd::Libvirtd;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn running(name: &str) -> bool {
    let conn = virt::connect::Connect::open(Some(common::libvirtd::URI)).unwrap();
    conn.lookup_domain_by_name(name)
        .is_ok_and(|d| d.is_active().unwrap_or(false))
}

fn defined(name: &str) -> bool {
    let conn = virt::connect::Connect::open(Some(common::libvirtd::URI)).unwrap();
    conn.lookup_domain_by_name(name).is_ok()
}

#[test]
fn vms_and_leases_survive_dnsmasq_and_libvirtd_failures_and_bad_input() {
    if let Some(why) = skip_reason() {
        common::prereq::skip(why);
        return;
    }
    let Some(h) = Libvirtd::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let _reaper = Reaper(tmp.path().to_path_buf());
    let pool = format!("vinod-fd-{}", std::process::id());
    h.track_pool(&pool);
    for i in 0..2 {
        h.track_domain(&format!("lab.fd.worker-{i}"));
    }
    let netns: PathBuf = h
        .netns()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/proc/self/ns/net"));
    let config = tmp.path().join("vinod.toml");
    let manifest = tmp.path().join("vino.yaml");
    std::fs::write(&config, config_text(tmp.path(), h.uri(), &pool, "")).unwrap();
    let good = vino_yaml("fd", "vfd0", 68, 2, 1);
    std::fs::write(&manifest, &good).unwrap();
    let status = tmp.path().join("state/standalone/status.yaml");
    let leases = tmp.path().join("state/dnsmasq/vfd0.leases");
    let pid_file = tmp.path().join("run/dnsmasq/vfd0/dnsmasq.pid");

    let child = standalone_daemon(&netns, &config, &manifest)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let daemon = Daemon(child);
    let daemon_pid = Pid::from_raw(daemon.0.id() as i32);
    wait_for("Ready", Duration::from_secs(60), || {
        read(&status).contains("phase: Ready")
    });

    // A real lease: worker-0 PXE-boots from vinod's dnsmasq.
    let conn = virt::connect::Connect::open(Some(common::libvirtd::URI)).unwrap();
    conn.lookup_domain_by_name("lab.fd.worker-0")
        .unwrap()
        .create()
        .unwrap();
    let took = wait_for("a lease for worker-0", Duration::from_secs(150), || {
        read(&leases).contains("192.168.68.2 ")
    });
    println!("worker-0 leased its reserved address {took:.1?} after power-on");
    let lease_line = read(&leases)
        .lines()
        .find(|l| l.contains("192.168.68.2 "))
        .unwrap()
        .to_string();

    // dnsmasq killed: restarted with its lease database.
    let old: i32 = read(&pid_file).trim().parse().unwrap();
    kill(Pid::from_raw(old), Signal::SIGKILL).unwrap();
    let took = wait_for("dnsmasq restarted", Duration::from_secs(3), || {
        read(&pid_file)
            .trim()
            .parse::<i32>()
            .is_ok_and(|p| p != old && Path::new(&format!("/proc/{p}")).exists())
    });
    println!("dnsmasq back {took:.1?} after kill -9");
    assert!(read(&leases).contains(&lease_line), "the lease was lost");

    // libvirtd restarted: VMs keep running, the next pass converges through a new connection.
    if h.restart() {
        assert!(
            running("lab.fd.worker-0"),
            "a libvirtd restart stopped the VM"
        );
        let before = std::fs::metadata(&status).unwrap().modified().unwrap();
        kill(daemon_pid, Signal::SIGHUP).unwrap();
        wait_for(
            "a pass after the libvirtd restart",
            Duration::from_secs(60),
            || {
                std::fs::metadata(&status).unwrap().modified().unwrap() > before
                    && read(&status).contains("phase: Ready")
            },
        );
    } else {
        common::prereq::skip(
            "the libvirtd restart drill needs a libvirtd this test started; one was already running",
        );
    }

    // An unreadable manifest: the last good one stays in force.
    let before = std::fs::metadata(&status).unwrap().modified().unwrap();
    std::fs::write(&manifest, "spec: [unclosed").unwrap();
    wait_for(
        "a pass over the broken manifest",
        Duration::from_secs(30),
        || std::fs::metadata(&status).unwrap().modified().unwrap() > before,
    );
    assert!(defined("lab.fd.worker-1") && running("lab.fd.worker-0"));

    // A Vino that cannot be planned: Degraded with the reason; its VMs are left as they are.
    std::fs::write(
        &manifest,
        good.replace("192.168.68.0/24", "192.168.68.0/33"),
    )
    .unwrap();
    wait_for("Degraded", Duration::from_secs(30), || {
        read(&status).contains("phase: Degraded")
    });
    assert!(
        read(&status).contains("spec.networks[0].subnet"),
        "{}",
        read(&status)
    );
    assert!(
        defined("lab.fd.worker-1") && running("lab.fd.worker-0"),
        "a bad Vino destroyed VMs"
    );
    assert_eq!(
        std::process::Command::new("pgrep")
            .args(["-f", &pid_file.parent().unwrap().display().to_string()])
            .output()
            .unwrap()
            .stdout
            .iter()
            .filter(|b| **b == b'\n')
            .count(),
        1,
        "dnsmasq should still be the one serving"
    );

    kill(daemon_pid, Signal::SIGTERM).unwrap();
    let mut daemon = daemon;
    wait_for("exit on SIGTERM", Duration::from_secs(15), || {
        daemon.0.try_wait().unwrap().is_some()
    });
    assert!(running("lab.fd.worker-0"), "SIGTERM stopped a VM");

    std::fs::write(&manifest, "").unwrap();
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .arg(env!("CARGO_BIN_EXE_vinod"))
        .args(["run", "--once", "--config"])
        .arg(&config)
        .arg("--standalone")
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!defined("lab.fd.worker-0") && !defined("lab.fd.worker-1"));
}
