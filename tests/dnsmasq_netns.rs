//! The dnsmasq adapter against real DHCP and TFTP clients. Root only: each test builds a "host"
//! network namespace with a bridge and one or two "VM" namespaces joined to it by veth pairs,
//! and runs the adapter from a thread that has entered the host namespace.

mod dnsmasq_lab;
#[path = "common/prereq.rs"]
mod prereq;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use dnsmasq_lab::{BRIDGE, Lab, poll, sh, skip_reason};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};
use vinod::host::DhcpServers;

#[test]
fn reserved_mac_gets_its_reserved_ip() {
    if let Some(why) = skip_reason(&["busybox"]) {
        return prereq::skip(why);
    }
    let lab = Lab::new("res", 201, 1);
    let server = lab.server(&[0], None);
    lab.in_host(|| async {
        let d = lab.adapter();
        d.start(&server).await.unwrap();
        assert_eq!(lab.dhcp(0), Some(lab.vms[0].ip));
        assert!(
            lab.has_lease(0),
            "lease file: {:?}",
            fs::read_to_string(lab.lease_file())
        );
        d.stop(BRIDGE).await.unwrap();
    });
}

#[test]
fn unknown_mac_gets_no_lease() {
    if let Some(why) = skip_reason(&["busybox"]) {
        return prereq::skip(why);
    }
    let lab = Lab::new("unk", 202, 2);
    let server = lab.server(&[0], None);
    lab.in_host(|| async {
        let d = lab.adapter();
        d.start(&server).await.unwrap();
        assert_eq!(lab.dhcp(1), None);
        let leases = fs::read_to_string(lab.lease_file()).unwrap_or_default();
        assert!(!leases.contains(&lab.vms[1].mac), "{leases}");
        d.stop(BRIDGE).await.unwrap();
    });
}

#[test]
fn tftp_serves_the_boot_file_byte_exact() {
    if let Some(why) = skip_reason(&["busybox", "tftp"]) {
        return prereq::skip(why);
    }
    let lab = Lab::new("tftp", 203, 1);
    let root = lab.path("tftp");
    fs::create_dir(&root).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    let mut content = vec![0u8; 100_000];
    std::io::Read::read_exact(&mut File::open("/dev/urandom").unwrap(), &mut content).unwrap();
    fs::write(root.join("boot.bin"), &content).unwrap();
    fs::set_permissions(root.join("boot.bin"), fs::Permissions::from_mode(0o644)).unwrap();
    let server = lab.server(&[0], Some((root, "boot.bin".into())));
    lab.in_host(|| async {
        let d = lab.adapter();
        d.start(&server).await.unwrap();
        assert_eq!(lab.dhcp(0), Some(lab.vms[0].ip));
        let events = fs::read_to_string(&lab.vms[0].events).unwrap();
        assert!(
            events.contains("siaddr=192.168.203.1 boot_file=boot.bin"),
            "{events}"
        );
        let fetched = lab.path("fetched.bin");
        let local = fetched.to_str().unwrap();
        sh(&[
            "timeout",
            "20",
            "ip",
            "netns",
            "exec",
            &lab.vms[0].ns,
            "tftp",
            "-m",
            "octet",
            "192.168.203.1",
            "-c",
            "get",
            "boot.bin",
            local,
        ]);
        assert_eq!(
            Sha256::digest(fs::read(&fetched).unwrap()),
            Sha256::digest(&content)
        );
        d.stop(BRIDGE).await.unwrap();
    });
}

/// A PXE client that says it is x86-64 UEFI firmware (DHCP option 93, client architecture 7
/// or 9) gets the EFI boot file; one that says nothing, the BIOS one.
#[test]
fn uefi_pxe_clients_get_the_efi_boot_file() {
    if let Some(why) = skip_reason(&["busybox"]) {
        return prereq::skip(why);
    }
    let lab = Lab::new("efi", 211, 2);
    let root = lab.path("tftp");
    fs::create_dir(&root).unwrap();
    let server = lab.server(&[0, 1], Some((root, "undionly.kpxe".into())));
    lab.in_host(|| async {
        let d = lab.adapter();
        d.start(&server).await.unwrap();
        let boot_file = |i: usize| {
            let events = fs::read_to_string(&lab.vms[i].events).unwrap();
            let line = events.lines().find(|l| l.starts_with("bound")).unwrap();
            line.rsplit("boot_file=").next().unwrap().to_string()
        };
        assert_eq!(lab.dhcp(0), Some(lab.vms[0].ip));
        assert_eq!(boot_file(0), "undionly.kpxe");
        for arch in ["0x5d:0007", "0x5d:0009"] {
            assert_eq!(lab.dhcp_with(1, &["-x", arch]), Some(lab.vms[1].ip));
            assert_eq!(boot_file(1), "snponly.efi", "client architecture {arch}");
        }
        // An iPXE client, UEFI or not, gets the boot URL.
        let ipxe = ["-x", "0x5d:0007", "-x", "0x4d:0469505845"];
        assert_eq!(lab.dhcp_with(1, &ipxe), Some(lab.vms[1].ip));
        assert_eq!(boot_file(1), "http://192.168.211.1/boot.ipxe");
        d.stop(BRIDGE).await.unwrap();
    });
}

#[test]
fn added_reservation_is_served_without_restart() {
    if let Some(why) = skip_reason(&["busybox"]) {
        return prereq::skip(why);
    }
    let lab = Lab::new("add", 204, 2);
    lab.in_host(|| async {
        let d = lab.adapter();
        d.start(&lab.server(&[0], None)).await.unwrap();
        assert_eq!(lab.dhcp(0), Some(lab.vms[0].ip));
        let pid = lab.pid();

        let both = lab.server(&[0, 1], None);
        d.set_hosts(&both).await.unwrap();
        assert_eq!(lab.dhcp(1), Some(lab.vms[1].ip));
        assert_eq!(lab.pid(), pid);
        assert!(
            lab.has_lease(0) && lab.has_lease(1),
            "{:?}",
            fs::read_to_string(lab.lease_file())
        );
        assert_eq!(d.observe().await.unwrap()[BRIDGE], both);

        // A removed reservation is forgotten (SIGHUP), still without a restart.
        d.set_hosts(&lab.server(&[0], None)).await.unwrap();
        assert_eq!(lab.dhcp(1), None);
        assert_eq!(lab.pid(), pid);
        d.stop(BRIDGE).await.unwrap();
    });
}

#[test]
fn killed_dnsmasq_is_restarted_within_a_second() {
    if let Some(why) = skip_reason(&["busybox"]) {
        return prereq::skip(why);
    }
    let lab = Lab::new("kill", 205, 1);
    let server = lab.server(&[0], None);
    lab.in_host(|| async {
        let d = lab.adapter();
        d.start(&server).await.unwrap();
        assert_eq!(lab.dhcp(0), Some(lab.vms[0].ip));
        assert!(lab.has_lease(0));
        let old = lab.pid();

        kill(Pid::from_raw(old as i32), Signal::SIGKILL).unwrap();
        let killed = Instant::now();
        let serving = poll(Duration::from_secs(2), || lab.replaced(old));
        let took = killed.elapsed();
        println!("new dnsmasq serving {took:?} after SIGKILL");
        assert!(
            serving && took < Duration::from_secs(1),
            "new dnsmasq after {took:?}"
        );
        assert!(
            lab.has_lease(0),
            "lease lost: {:?}",
            fs::read_to_string(lab.lease_file())
        );
        assert_eq!(lab.dhcp(0), Some(lab.vms[0].ip));
        d.stop(BRIDGE).await.unwrap();
    });
}

#[test]
fn invalid_config_is_rejected_and_stop_leaves_nothing() {
    if let Some(why) = skip_reason(&[]) {
        return prereq::skip(why);
    }
    let lab = Lab::new("bad", 206, 1);
    let good = lab.server(&[0], None);
    let mut bad = good.clone();
    bad.config.push_str("no-such-option=1\n");
    lab.in_host(|| async {
        let d = lab.adapter();
        d.start(&good).await.unwrap();
        let pid = lab.pid();
        for attempt in [d.start(&bad).await, d.reconfigure(&bad).await] {
            let e = attempt.unwrap_err().to_string();
            assert!(
                e.contains("bad option at line") && e.contains(BRIDGE) && e.contains("pxe"),
                "{e}"
            );
        }
        assert_eq!(lab.pid(), pid);
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        assert_eq!(d.observe().await.unwrap()[BRIDGE], good);

        d.stop(BRIDGE).await.unwrap();
        assert_eq!(lab.processes(), Vec::<u32>::new());
        assert!(!lab.run_dir().join("dnsmasq").join(BRIDGE).exists());
        assert!(!lab.lease_file().exists());
        assert!(d.observe().await.unwrap().is_empty());
        d.stop(BRIDGE).await.unwrap();
    });
}

#[test]
fn observe_after_start_equals_desired() {
    if let Some(why) = skip_reason(&[]) {
        return prereq::skip(why);
    }
    let lab = Lab::new("obs", 207, 2);
    let server = lab.server(&[0, 1], None);
    lab.in_host(|| async {
        let d = lab.adapter();
        assert!(d.observe().await.unwrap().is_empty());
        d.start(&server).await.unwrap();
        assert_eq!(
            d.observe().await.unwrap(),
            BTreeMap::from([(BRIDGE.to_string(), server.clone())])
        );
        d.stop(BRIDGE).await.unwrap();
    });
}

#[test]
fn stale_server_is_observed_then_replaced_without_duplicate() {
    if let Some(why) = skip_reason(&["busybox"]) {
        return prereq::skip(why);
    }
    let lab = Lab::new("stale", 208, 1);
    let server = lab.server(&[0], None);
    lab.in_host(|| async {
        let earlier = lab.adapter();
        earlier.start(&server).await.unwrap();
        let stale = lab.pid();
        drop(earlier);
        // Still serving although nobody reads its log any more.
        assert_eq!(lab.dhcp(0), Some(lab.vms[0].ip));
        assert_eq!(lab.pid(), stale);

        let d = lab.adapter();
        assert_eq!(d.observe().await.unwrap()[BRIDGE], server);
        d.start(&server).await.unwrap();
        let pid = lab.pid();
        assert_ne!(pid, stale);
        assert_eq!(lab.processes(), vec![pid]);
        assert_eq!(lab.dhcp(0), Some(lab.vms[0].ip));
        d.stop(BRIDGE).await.unwrap();
    });
}

#[test]
fn reconfigure_restarts_and_keeps_leases() {
    if let Some(why) = skip_reason(&["busybox"]) {
        return prereq::skip(why);
    }
    let lab = Lab::new("reconf", 209, 1);
    let server = lab.server(&[0], None);
    let mut changed = server.clone();
    changed.config = changed.config.replace(",1h\n", ",2h\n");
    assert_ne!(changed, server);
    lab.in_host(|| async {
        let d = lab.adapter();
        d.start(&server).await.unwrap();
        assert_eq!(lab.dhcp(0), Some(lab.vms[0].ip));
        let pid = lab.pid();
        d.reconfigure(&changed).await.unwrap();
        assert_ne!(lab.pid(), pid);
        assert!(
            lab.has_lease(0),
            "{:?}",
            fs::read_to_string(lab.lease_file())
        );
        assert_eq!(d.observe().await.unwrap()[BRIDGE], changed);
        assert_eq!(lab.dhcp(0), Some(lab.vms[0].ip));
        d.stop(BRIDGE).await.unwrap();
    });
}

#[test]
fn servers_run_in_the_namespace_the_adapter_was_created_in() {
    if let Some(why) = skip_reason(&["busybox"]) {
        return prereq::skip(why);
    }
    let lab = Lab::new("ns", 210, 1);
    let server = lab.server(&[0], None);
    let d = lab.in_host(|| async { lab.adapter() });
    // Driven from this thread (root namespace, where the bridge does not exist) on a
    // multi-threaded runtime: start and restart still happen in the host namespace.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        d.start(&server).await.unwrap();
        assert_eq!(lab.dhcp(0), Some(lab.vms[0].ip));
        let old = lab.pid();
        kill(Pid::from_raw(old as i32), Signal::SIGKILL).unwrap();
        assert!(poll(Duration::from_secs(2), || lab.replaced(old)));
        assert_eq!(lab.dhcp(0), Some(lab.vms[0].ip));
        d.stop(BRIDGE).await.unwrap();
    });
}
