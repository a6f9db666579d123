//! The libvirt adapter against libvirt's test driver (`test:///default`): no daemon, no root.
//!
//! The test driver's state is shared by every connection in the process and tests run in
//! parallel, so each test uses its own Vino (hence domain and volume names) and its own pool.
//! That state lives only while a connection is open, so `conn()` keeps one open.
//! The driver accepts the rendered XML unchanged, including `type='test'`, volume disks and
//! bridge interfaces; it checks neither that the pool nor that the bridge exists.

use std::path::Path;
use std::sync::OnceLock;

use tempfile::TempDir;
use vinod::config::LibvirtConfig;
use vinod::host::Hypervisor;
use vinod::host::libvirt::{Libvirt, VirtError};
use vinod::plan::names;
use vinod::render::domain::{DomainSpec, render};
use vinod::state::{Domain, Owner, Volume};
use virt::connect::Connect;

const URI: &str = "test:///default";
const MIB: u64 = 1024 * 1024;

/// The test driver's own domain, running, without vinod's metadata.
const BUILTIN: &str = "test";

/// An adapter on the test driver with a pool named after `vino` in a fresh directory.
fn adapter(vino: &str) -> (Libvirt, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = config(vino, &dir.path().join("pool"));
    (Libvirt::new(&config), dir)
}

fn config(vino: &str, pool_path: &Path) -> LibvirtConfig {
    LibvirtConfig {
        uri: URI.into(),
        pool_name: format!("pool-{vino}"),
        pool_path: pool_path.to_path_buf(),
        console_log_dir: pool_path.join("console"),
        ..LibvirtConfig::default()
    }
}

fn owner(vino: &str) -> Owner {
    Owner {
        namespace: "ns".into(),
        name: vino.into(),
    }
}

/// The root volume and domain of VM `worker-0` of Vino `ns/<vino>`, as the planner would
/// produce them.
fn desired(vino: &str, memory_mib: u64) -> (Volume, Domain) {
    let vm = names::vm_names("ns", vino, "node1", "worker", 0);
    let volume = Volume {
        name: names::volume(&vm.domain, "root"),
        capacity_bytes: 64 * MIB,
        sparse: true,
        owner: owner(vino),
    };
    let spec = DomainSpec {
        name: vm.domain.clone(),
        uuid: vm.uuid.clone(),
        owner: owner(vino),
        node: "node1".into(),
        domain_type: "test".into(),
        machine: "pc".into(),
        vcpus: 1,
        memory_mib,
        hugepages: false,
        pinned_cpus: None,
        disks: vec![(format!("pool-{vino}"), volume.name.clone(), "vda".into())],
        nics: vec![("br-test".into(), "52:54:00:00:00:01".into())],
        console_log: format!("/var/log/vinod/console/{}.log", vm.domain).into(),
        vnc_listen: None,
        uefi: false,
    };
    let (xml, spec_hash) = render(&spec);
    let domain = Domain {
        name: vm.domain,
        uuid: vm.uuid,
        owner: owner(vino),
        spec_hash,
        xml,
        pinned_cpus: Default::default(),
        running: false,
    };
    (volume, domain)
}

fn observed(d: &Domain) -> Domain {
    Domain {
        xml: String::new(),
        ..d.clone()
    }
}

/// A connection for looking behind the adapter's back. It is kept open for the whole process:
/// the test driver discards its state when its last connection closes.
fn conn() -> Connect {
    static CONN: OnceLock<Connect> = OnceLock::new();
    CONN.get_or_init(|| Connect::open(Some(URI)).unwrap())
        .clone()
}

fn is_active(name: &str) -> bool {
    conn()
        .lookup_domain_by_name(name)
        .unwrap()
        .is_active()
        .unwrap()
}

fn exists(name: &str) -> bool {
    conn().lookup_domain_by_name(name).is_ok()
}

/// The built-in domain is still defined and running.
fn assert_builtin_intact() {
    assert!(
        is_active(BUILTIN),
        "built-in domain {BUILTIN} is gone or stopped"
    );
}

#[tokio::test]
async fn define_then_observe_round_trips() {
    let vino = "roundtrip";
    let (lv, _dir) = adapter(vino);
    let (volume, domain) = desired(vino, 128);
    lv.create_volume(&volume).await.unwrap();
    lv.define(&domain).await.unwrap();

    let (volumes, domains) = lv.observe().await.unwrap();
    assert_eq!(volumes.get(&volume.name), Some(&volume));
    let got = &domains[&domain.name];
    assert_eq!(got, &observed(&domain));
    assert!(got.xml.is_empty());
    assert!(
        !is_active(&domain.name),
        "a defined domain stays powered off"
    );
    assert!(!domains.contains_key(BUILTIN));
    assert_builtin_intact();
}

#[tokio::test]
async fn redefine_changes_observed_hash_and_keeps_it_running() {
    let vino = "redefine";
    let (lv, _dir) = adapter(vino);
    let (_, before) = desired(vino, 128);
    let (_, after) = desired(vino, 256);
    assert_ne!(before.spec_hash, after.spec_hash);
    lv.define(&before).await.unwrap();
    conn()
        .lookup_domain_by_name(&before.name)
        .unwrap()
        .create()
        .unwrap();

    lv.redefine(&after).await.unwrap();
    let (_, domains) = lv.observe().await.unwrap();
    let running = Domain {
        running: true,
        ..observed(&after)
    };
    assert_eq!(domains[&after.name], running, "observed as running");
    assert!(
        is_active(&after.name),
        "redefine must not stop a running domain"
    );
    assert_builtin_intact();
}

#[tokio::test]
async fn undefine_removes_a_running_domain() {
    let vino = "undefine";
    let (lv, _dir) = adapter(vino);
    let (_, domain) = desired(vino, 128);
    lv.define(&domain).await.unwrap();
    conn()
        .lookup_domain_by_name(&domain.name)
        .unwrap()
        .create()
        .unwrap();

    lv.undefine(&domain).await.unwrap();
    let (_, domains) = lv.observe().await.unwrap();
    assert!(!domains.contains_key(&domain.name));
    assert!(!exists(&domain.name));
    // Already gone: nothing to do.
    lv.undefine(&domain).await.unwrap();
    assert_builtin_intact();
}

#[tokio::test]
async fn volumes_are_created_observed_and_deleted() {
    let vino = "volumes";
    let (lv, _dir) = adapter(vino);
    let (sparse, _) = desired(vino, 128);
    let thick = Volume {
        name: names::volume(
            &names::vm_names("ns", vino, "node1", "worker", 0).domain,
            "data",
        ),
        capacity_bytes: 32 * MIB,
        sparse: false,
        owner: owner(vino),
    };
    lv.create_volume(&sparse).await.unwrap();
    lv.create_volume(&thick).await.unwrap();
    let (volumes, _) = lv.observe().await.unwrap();
    assert_eq!(volumes.get(&sparse.name), Some(&sparse));
    assert_eq!(volumes.get(&thick.name), Some(&thick));

    let again = lv.create_volume(&sparse).await.unwrap_err();
    assert!(matches!(again, VirtError::VolumeExists { .. }), "{again}");
    assert!(again.to_string().contains(&sparse.name), "{again}");

    lv.delete_volume(&sparse).await.unwrap();
    let (volumes, _) = lv.observe().await.unwrap();
    assert!(!volumes.contains_key(&sparse.name));
    assert!(volumes.contains_key(&thick.name));
    // Already gone: nothing to do.
    lv.delete_volume(&sparse).await.unwrap();
}

#[tokio::test]
async fn foreign_volumes_in_the_pool_are_ignored_and_kept() {
    let vino = "foreignvol";
    let (lv, _dir) = adapter(vino);
    lv.observe().await.unwrap();
    let pool = conn()
        .lookup_storage_pool_by_name(&format!("pool-{vino}"))
        .unwrap();
    let xml = "<volume><name>scratch.qcow2</name><capacity>1048576</capacity><target><format type='qcow2'/></target></volume>";
    virt::storage_vol::StorageVol::create_xml(&pool, xml, 0).unwrap();

    let (volumes, _) = lv.observe().await.unwrap();
    assert!(volumes.is_empty(), "{volumes:?}");
    let foreign = Volume {
        name: "scratch.qcow2".into(),
        capacity_bytes: MIB,
        sparse: true,
        owner: owner(vino),
    };
    let err = lv.delete_volume(&foreign).await.unwrap_err();
    assert!(matches!(err, VirtError::VolumeNotOwned { .. }), "{err}");
    // A well-formed name of another Vino is refused too.
    let (mut other, _) = desired(vino, 128);
    other.owner = owner("someone-else");
    let err = lv.create_volume(&other).await.unwrap_err();
    assert!(matches!(err, VirtError::VolumeNotOwned { .. }), "{err}");
    assert!(pool.lookup_storage_vol_by_name("scratch.qcow2").is_ok());
}

#[tokio::test]
async fn pool_is_created_started_and_set_to_autostart() {
    let vino = "pool";
    let (lv, dir) = adapter(vino);
    lv.observe().await.unwrap();
    let pool = conn()
        .lookup_storage_pool_by_name(&format!("pool-{vino}"))
        .unwrap();
    assert!(pool.is_active().unwrap());
    assert!(pool.autostart().unwrap());
    let xml = pool.xml_desc(0).unwrap();
    assert!(xml.contains("<mode>0711</mode>"), "{xml}");
    assert!(
        xml.contains(&format!(
            "<path>{}</path>",
            dir.path().join("pool").display()
        )),
        "{xml}"
    );

    // Stopped by someone: started again on next use.
    pool.destroy().unwrap();
    lv.observe().await.unwrap();
    assert!(pool.is_active().unwrap());
}

#[tokio::test]
async fn pool_of_the_same_name_elsewhere_is_refused() {
    let vino = "poolclash";
    let (lv, _dir) = adapter(vino);
    lv.observe().await.unwrap();
    let other = tempfile::tempdir().unwrap();
    let intruder = Libvirt::new(&config(vino, other.path()));
    let err = intruder.observe().await.unwrap_err();
    assert!(matches!(err, VirtError::PoolPath { .. }), "{err}");
    assert!(err.to_string().contains(&format!("pool-{vino}")), "{err}");
    let (volume, _) = desired(vino, 128);
    let err = intruder.create_volume(&volume).await.unwrap_err();
    assert!(matches!(err, VirtError::PoolPath { .. }), "{err}");
}

#[tokio::test]
async fn builtin_domain_is_never_observed_or_changed() {
    let vino = "builtin";
    let (lv, _dir) = adapter(vino);
    let builtin_uuid = conn()
        .lookup_domain_by_name(BUILTIN)
        .unwrap()
        .uuid_string()
        .unwrap();
    let (_, mine) = desired(vino, 128);
    let impostor = Domain {
        name: BUILTIN.into(),
        ..mine.clone()
    };

    let (_, domains) = lv.observe().await.unwrap();
    assert!(!domains.contains_key(BUILTIN));

    let err = lv.define(&impostor).await.unwrap_err();
    assert!(
        matches!(err, VirtError::DomainClash { what: "name", .. }),
        "{err}"
    );
    let err = lv.redefine(&impostor).await.unwrap_err();
    assert!(matches!(err, VirtError::NotOwned { .. }), "{err}");
    assert!(err.to_string().contains(BUILTIN), "{err}");
    let err = lv.undefine(&impostor).await.unwrap_err();
    assert!(matches!(err, VirtError::NotOwned { .. }), "{err}");

    let same_uuid = Domain {
        uuid: builtin_uuid,
        ..mine.clone()
    };
    let err = lv.define(&same_uuid).await.unwrap_err();
    assert!(
        matches!(err, VirtError::DomainClash { what: "UUID", .. }),
        "{err}"
    );
    assert!(err.to_string().contains(BUILTIN), "{err}");
    assert!(!exists(&mine.name));

    let (_, domains) = lv.observe().await.unwrap();
    assert!(!domains.contains_key(BUILTIN));
    assert_builtin_intact();
}

#[tokio::test]
async fn unowned_domain_with_a_vinod_like_name_is_left_alone() {
    let vino = "unowned";
    let (lv, _dir) = adapter(vino);
    let (_, domain) = desired(vino, 128);
    // The same definition without vinod's metadata element.
    let start = domain.xml.find("<metadata>").unwrap();
    let end = domain.xml.find("</metadata>").unwrap() + "</metadata>".len();
    let bare = format!("{}{}", &domain.xml[..start], &domain.xml[end..]);
    conn().define_domain_xml(&bare).unwrap();

    let (_, domains) = lv.observe().await.unwrap();
    assert!(!domains.contains_key(&domain.name));
    let err = lv.define(&domain).await.unwrap_err();
    assert!(
        matches!(err, VirtError::DomainClash { what: "name", .. }),
        "{err}"
    );
    let err = lv.redefine(&domain).await.unwrap_err();
    assert!(matches!(err, VirtError::NotOwned { .. }), "{err}");
    let err = lv.undefine(&domain).await.unwrap_err();
    assert!(matches!(err, VirtError::NotOwned { .. }), "{err}");
    let xml = conn()
        .lookup_domain_by_name(&domain.name)
        .unwrap()
        .xml_desc(0)
        .unwrap();
    assert!(!xml.contains("<metadata>"), "the domain was changed: {xml}");
}

#[tokio::test]
async fn domain_of_another_vino_is_not_changed() {
    let vino = "othervino";
    let (lv, _dir) = adapter(vino);
    let (_, domain) = desired(vino, 128);
    lv.define(&domain).await.unwrap();
    let wrong_owner = Domain {
        owner: owner("thief"),
        ..domain.clone()
    };
    let err = lv.undefine(&wrong_owner).await.unwrap_err();
    assert!(matches!(err, VirtError::NotOwned { .. }), "{err}");
    let err = lv.redefine(&wrong_owner).await.unwrap_err();
    assert!(matches!(err, VirtError::NotOwned { .. }), "{err}");
    assert!(exists(&domain.name));
}

#[tokio::test]
async fn define_twice_fails() {
    let vino = "twice";
    let (lv, _dir) = adapter(vino);
    let (_, domain) = desired(vino, 128);
    lv.define(&domain).await.unwrap();
    let err = lv.define(&domain).await.unwrap_err();
    assert!(
        matches!(err, VirtError::DomainClash { what: "name", .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&domain.name), "{err}");
    let err = lv
        .redefine(&desired("never-defined", 128).1)
        .await
        .unwrap_err();
    assert!(matches!(err, VirtError::NoDomain { .. }), "{err}");
}
