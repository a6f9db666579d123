//! The libvirt adapter against a real libvirtd (root only; see `common::libvirtd`): a TCG VM
//! with a root volume and a NIC on a bridge in the daemon's network namespace is defined,
//! started, redefined while running, and undefined. Every wait is bounded.

mod common;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use common::libvirtd::Libvirtd;
use vinod::config::LibvirtConfig;
use vinod::host::Hypervisor;
use vinod::host::libvirt::Libvirt;
use vinod::plan::names;
use vinod::render::domain::{DomainSpec, render};
use vinod::state::{Domain, Owner, Volume};
use virt::connect::Connect;
use virt::domain::DomainState;

const MIB: u64 = 1024 * 1024;
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Awaits one adapter call, failing the test if it takes longer than [`STEP_TIMEOUT`].
async fn step<T>(what: &str, f: impl Future<Output = T>) -> T {
    let begin = Instant::now();
    let out = tokio::time::timeout(STEP_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {STEP_TIMEOUT:?}"));
    println!("{what}: {:.2?}", begin.elapsed());
    out
}

/// Polls `cond` every 100 ms for at most `limit`.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let begin = Instant::now();
    while !cond() {
        assert!(begin.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a domain: done by vinod's power control, not by the `Hypervisor` trait.
fn start_domain(uri: &str, name: &str) {
    let conn = Connect::open(Some(uri)).unwrap();
    conn.lookup_domain_by_name(name).unwrap().create().unwrap();
}

fn state(uri: &str, name: &str) -> Option<DomainState> {
    let conn = Connect::open(Some(uri)).unwrap();
    let dom = conn.lookup_domain_by_name(name).ok()?;
    Some(dom.state().unwrap().0.unwrap())
}

/// The command line of the domain's qemu process.
fn qemu_cmdline(name: &str) -> String {
    let pid = std::fs::read_to_string(format!("/run/libvirt/qemu/{name}.pid")).unwrap();
    let raw = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap();
    String::from_utf8_lossy(&raw).replace('\0', " ")
}

fn desired(pool: &str, bridge: &str, dir: &Path, memory_mib: u64) -> (Volume, Domain) {
    let owner = Owner {
        namespace: "vinod-test".into(),
        name: format!("real-{}", std::process::id()),
    };
    let vm = names::vm_names(&owner.namespace, &owner.name, "node1", "worker", 0);
    let volume = Volume {
        name: names::volume(&vm.domain, "root"),
        capacity_bytes: 64 * MIB,
        sparse: true,
        owner: owner.clone(),
    };
    let spec = DomainSpec {
        name: vm.domain.clone(),
        uuid: vm.uuid.clone(),
        owner: owner.clone(),
        node: "node1".into(),
        domain_type: "qemu".into(),
        machine: "pc".into(),
        vcpus: 1,
        memory_mib,
        hugepages: false,
        pinned_cpus: None,
        disks: vec![(pool.into(), volume.name.clone(), "vda".into())],
        nics: vec![(bridge.into(), "52:54:00:76:6e:01".into())],
        console_log: dir.join("console.log"),
        vnc_listen: None,
        uefi: false,
    };
    let (xml, spec_hash) = render(&spec);
    let domain = Domain {
        name: vm.domain,
        uuid: vm.uuid,
        owner,
        spec_hash,
        xml,
        pinned_cpus: Default::default(),
        running: false,
    };
    (volume, domain)
}

#[tokio::test]
async fn vm_lifecycle_on_a_real_libvirtd() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("vinod=info")
        .try_init();
    let Some(daemon) = Libvirtd::start() else {
        return;
    };
    let uri = daemon.uri();
    let dir = tempfile::tempdir().unwrap();
    let pool = format!("vinod-test-{}", std::process::id());
    let bridge = format!("vtbr{}", std::process::id() % 100_000);
    daemon.track_pool(&pool);
    daemon.add_bridge(&bridge);
    let lv = Libvirt::new(&LibvirtConfig {
        uri: uri.into(),
        domain_type: "qemu".into(),
        pool_name: pool.clone(),
        pool_path: dir.path().join("pool"),
        console_log_dir: dir.path().join("console"),
        ..LibvirtConfig::default()
    });
    let (volume, domain) = desired(&pool, &bridge, dir.path(), 128);
    let (_, bigger) = desired(&pool, &bridge, dir.path(), 192);
    daemon.track_domain(&domain.name);

    // Pool and volume.
    step("create_volume", lv.create_volume(&volume))
        .await
        .unwrap();
    let pool_mode = std::fs::metadata(dir.path().join("pool")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&pool_mode.permissions()) & 0o777,
        0o711
    );
    let (volumes, domains) = step("observe", lv.observe()).await.unwrap();
    assert_eq!(volumes.get(&volume.name), Some(&volume));
    assert!(dir.path().join("pool").join(&volume.name).exists());
    assert!(!domains.contains_key(&domain.name));

    // Define: observed as desired, powered off.
    step("define", lv.define(&domain)).await.unwrap();
    let (_, domains) = step("observe", lv.observe()).await.unwrap();
    let got = &domains[&domain.name];
    assert_eq!(
        (&got.uuid, &got.owner, &got.spec_hash),
        (&domain.uuid, &domain.owner, &domain.spec_hash)
    );
    assert_eq!(state(uri, &domain.name), Some(DomainState::Shutoff));

    // Start it (TCG) and see it keep running.
    let begin = Instant::now();
    start_domain(uri, &domain.name);
    println!("start: {:.2?}", begin.elapsed());
    wait_for("domain running", Duration::from_secs(30), || {
        state(uri, &domain.name) == Some(DomainState::Running)
    });
    let cmdline = qemu_cmdline(&domain.name);
    assert!(cmdline.contains("tcg"), "not TCG: {cmdline}");
    assert!(
        !cmdline.contains("accel=kvm") && !cmdline.contains("-accel kvm"),
        "{cmdline}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(state(uri, &domain.name), Some(DomainState::Running));
    // The tap is in the daemon's namespace, on the test's bridge.
    let links = daemon.ip(&["-o", "link", "show", "master", &bridge]);
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(links.contains("vnet"), "no tap on {bridge}: {links}");

    // Redefine while running: still running, new hash observed.
    step("redefine", lv.redefine(&bigger)).await.unwrap();
    let (_, domains) = step("observe", lv.observe()).await.unwrap();
    assert_eq!(domains[&domain.name].spec_hash, bigger.spec_hash);
    assert_ne!(bigger.spec_hash, domain.spec_hash);
    assert_eq!(state(uri, &domain.name), Some(DomainState::Running));

    // libvirtd restarts under the adapter: the same adapter reconnects.
    if daemon.restart() {
        let (volumes, domains) = step("observe after libvirtd restart", lv.observe())
            .await
            .unwrap();
        assert_eq!(domains[&domain.name].spec_hash, bigger.spec_hash);
        assert!(volumes.contains_key(&volume.name));
        assert_eq!(state(uri, &domain.name), Some(DomainState::Running));
    } else {
        common::prereq::skip(
            "the libvirtd restart step needs a libvirtd this test started; one was already running",
        );
    }

    // Undefine: powered off and gone; the volume is then deletable.
    step("undefine", lv.undefine(&bigger)).await.unwrap();
    let (_, domains) = step("observe", lv.observe()).await.unwrap();
    assert!(!domains.contains_key(&domain.name));
    assert_eq!(state(uri, &domain.name), None);
    step("delete_volume", lv.delete_volume(&volume))
        .await
        .unwrap();
    let (volumes, _) = step("observe", lv.observe()).await.unwrap();
    assert!(!volumes.contains_key(&volume.name));
    assert!(!dir.path().join("pool").join(&volume.name).exists());
}

#[tokio::test]
async fn thick_volume_is_observed_as_not_sparse() {
    let Some(daemon) = Libvirtd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pool = format!("vinod-thick-{}", std::process::id());
    daemon.track_pool(&pool);
    let lv = Libvirt::new(&LibvirtConfig {
        uri: daemon.uri().into(),
        pool_name: pool.clone(),
        pool_path: dir.path().join("pool"),
        console_log_dir: dir.path().join("console"),
        ..LibvirtConfig::default()
    });
    let (mut volume, _) = desired(&pool, "unused", dir.path(), 128);
    volume.name = volume.name.replace("-root.", "-data.");
    volume.sparse = false;
    volume.capacity_bytes = 8 * MIB;
    step("create_volume", lv.create_volume(&volume))
        .await
        .unwrap();
    let (volumes, _) = step("observe", lv.observe()).await.unwrap();
    assert_eq!(volumes.get(&volume.name), Some(&volume));
    step("delete_volume", lv.delete_volume(&volume))
        .await
        .unwrap();
}
