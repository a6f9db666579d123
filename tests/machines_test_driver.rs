//! The libvirt adapter's BMC operations ([`Machines`]) on libvirt's test driver: power
//! actions, boot overrides (the one-time kind really reverts), virtual media, BIOS settings,
//! visibility of vinod-owned domains only, and that reconcile's redefinition keeps the BMC's
//! state.
//!
//! The test driver's state is shared by the whole process and lives while a connection is
//! open: `conn()` keeps one, and every test uses its own Vino name.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vinod::config::LibvirtConfig;
use vinod::host::libvirt::Libvirt;
use vinod::host::machine::{
    BiosSettings, BootEnabled, BootMode, BootOverride, BootTarget, Fault, FaultKind, Media,
    PowerAction, PowerState,
};
use vinod::host::{Hypervisor, Machines};
use vinod::plan::names;
use vinod::render::domain::{DomainSpec, render};
use vinod::state::{Domain, Owner};
use virt::connect::Connect;

const URI: &str = "test:///default";

fn conn() -> Connect {
    static CONN: OnceLock<Connect> = OnceLock::new();
    CONN.get_or_init(|| Connect::open(Some(URI)).unwrap())
        .clone()
}

fn adapter() -> Libvirt {
    conn();
    Libvirt::new(&LibvirtConfig {
        uri: URI.into(),
        console_log_dir: std::env::temp_dir().join("vinod-machines-test-console"),
        ..LibvirtConfig::default()
    })
}

fn domain(vino: &str, memory_mib: u64) -> Domain {
    let vm = names::vm_names("ns", vino, "node1", "worker", 0);
    let owner = Owner {
        namespace: "ns".into(),
        name: vino.into(),
    };
    let (xml, spec_hash) = render(&DomainSpec {
        name: vm.domain.clone(),
        uuid: vm.uuid.clone(),
        owner: owner.clone(),
        node: "node1".into(),
        domain_type: "test".into(),
        machine: "pc".into(),
        vcpus: 2,
        memory_mib,
        hugepages: false,
        pinned_cpus: None,
        disks: vec![],
        nics: vec![("br-test".into(), "52:54:00:00:00:0a".into())],
        console_log: "/tmp/vinod-machines-test-console/x.log".into(),
        vnc_listen: None,
        uefi: false,
    });
    Domain {
        name: vm.domain,
        uuid: vm.uuid,
        owner,
        spec_hash,
        xml,
        pinned_cpus: Default::default(),
        running: false,
    }
}

async fn defined(vino: &str) -> (Libvirt, Domain) {
    let lv = adapter();
    let d = domain(vino, 128);
    lv.define(&d).await.unwrap();
    (lv, d)
}

fn persistent_boot(name: &str) -> Vec<String> {
    boot_devs(&xml(name, virt::sys::VIR_DOMAIN_XML_INACTIVE))
}

fn live_boot(name: &str) -> Vec<String> {
    boot_devs(&xml(name, 0))
}

fn xml(name: &str, flags: u32) -> String {
    conn()
        .lookup_domain_by_name(name)
        .unwrap()
        .xml_desc(flags)
        .unwrap()
}

fn boot_devs(xml: &str) -> Vec<String> {
    xml.split("<boot dev=")
        .skip(1)
        .map(|s| s[1..].split(['\'', '"']).next().unwrap().to_string())
        .collect()
}

fn once(target: BootTarget) -> BootOverride {
    BootOverride {
        target,
        enabled: BootEnabled::Once,
        mode: BootMode::Legacy,
    }
}

async fn power_of(lv: &Libvirt, name: &str) -> PowerState {
    lv.get(name).await.unwrap().unwrap().power
}

#[tokio::test]
async fn only_vinods_domains_are_visible_or_controllable() {
    let (lv, d) = defined("m-visible").await;
    let all = lv.list().await.unwrap();
    assert!(all.iter().any(|m| m.name == d.name));
    assert!(all.iter().all(|m| m.name != "test"), "the built-in domain");
    let m = lv.get(&d.name).await.unwrap().unwrap();
    assert_eq!(m.uuid, d.uuid);
    assert_eq!(m.owner, d.owner);
    assert_eq!((m.vcpus, m.memory_mib), (2, 128));
    assert_eq!(m.macs, ["52:54:00:00:00:0a"]);
    assert_eq!(m.power, PowerState::Off);
    assert_eq!(m.boot, BootOverride::default());
    assert_eq!(m.media, None);
    assert!(lv.get("test").await.unwrap().is_none());
    assert_eq!(lv.owner(&d.name).await.unwrap(), Some(d.owner.clone()));
    assert_eq!(lv.owner("test").await.unwrap(), None);
    assert!(lv.get("no-such-domain").await.unwrap().is_none());
    let e = lv.power("test", PowerAction::ForceOff).await.unwrap_err();
    assert_eq!(e.fault(), FaultKind::NotFound);
    assert!(
        conn()
            .lookup_domain_by_name("test")
            .unwrap()
            .is_active()
            .unwrap()
    );
    let e = lv
        .set_boot("test", once(BootTarget::Pxe))
        .await
        .unwrap_err();
    assert_eq!(e.fault(), FaultKind::NotFound);
    lv.undefine(&d).await.unwrap();
}

#[tokio::test]
async fn every_power_action() {
    let (lv, d) = defined("m-power").await;
    let n = d.name.as_str();
    lv.power(n, PowerAction::GracefulShutdown).await.unwrap();
    assert_eq!(power_of(&lv, n).await, PowerState::Off, "no-op when off");
    let e = lv.power(n, PowerAction::Nmi).await.unwrap_err();
    assert_eq!(e.fault(), FaultKind::WrongState);
    lv.power(n, PowerAction::On).await.unwrap();
    assert_eq!(power_of(&lv, n).await, PowerState::On);
    lv.power(n, PowerAction::ForceOn).await.unwrap();
    lv.power(n, PowerAction::Nmi).await.unwrap();
    lv.power(n, PowerAction::ForceRestart).await.unwrap();
    assert_eq!(power_of(&lv, n).await, PowerState::On);
    lv.power(n, PowerAction::GracefulRestart).await.unwrap();
    assert_eq!(power_of(&lv, n).await, PowerState::On);
    lv.power(n, PowerAction::PushPowerButton).await.unwrap();
    assert_eq!(power_of(&lv, n).await, PowerState::Off);
    lv.power(n, PowerAction::PushPowerButton).await.unwrap();
    assert_eq!(power_of(&lv, n).await, PowerState::On);
    lv.power(n, PowerAction::ForceOff).await.unwrap();
    assert_eq!(power_of(&lv, n).await, PowerState::Off);
    lv.power(n, PowerAction::ForceRestart).await.unwrap();
    assert_eq!(power_of(&lv, n).await, PowerState::On, "restart from off");
    lv.undefine(&d).await.unwrap();
}

#[tokio::test]
async fn once_is_used_by_the_next_boot_then_reverts() {
    let (lv, d) = defined("m-once").await;
    let n = d.name.as_str();
    assert_eq!(persistent_boot(n), ["hd", "network"]);
    lv.set_boot(n, once(BootTarget::Pxe)).await.unwrap();
    assert_eq!(
        lv.get(n).await.unwrap().unwrap().boot,
        once(BootTarget::Pxe)
    );
    assert_eq!(persistent_boot(n), ["network", "hd"]);
    // The override is in the definition: a new adapter (vinod restarted) sees it.
    assert_eq!(
        adapter().get(n).await.unwrap().unwrap().boot,
        once(BootTarget::Pxe)
    );
    lv.power(n, PowerAction::On).await.unwrap();
    assert_eq!(
        live_boot(n),
        ["network", "hd"],
        "this boot used the override"
    );
    assert_eq!(
        persistent_boot(n),
        ["hd", "network"],
        "the next one will not"
    );
    assert_eq!(
        lv.get(n).await.unwrap().unwrap().boot,
        BootOverride::default()
    );
    // A restart through the BMC boots the default order again.
    lv.power(n, PowerAction::ForceRestart).await.unwrap();
    assert_eq!(live_boot(n), ["hd", "network"]);
    lv.undefine(&d).await.unwrap();
}

#[tokio::test]
async fn continuous_stays_and_graceful_restart_picks_it_up() {
    let (lv, d) = defined("m-continuous").await;
    let n = d.name.as_str();
    lv.power(n, PowerAction::On).await.unwrap();
    let cd = BootOverride {
        target: BootTarget::Cd,
        enabled: BootEnabled::Continuous,
        mode: BootMode::Legacy,
    };
    lv.set_boot(n, cd).await.unwrap();
    assert_eq!(live_boot(n), ["hd", "network"], "running config unchanged");
    // The running domain lacks the override: a graceful restart is a cold one.
    lv.power(n, PowerAction::GracefulRestart).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // (A domain that is off reports its persistent definition as live.)
    while power_of(&lv, n).await != PowerState::On || live_boot(n)[0] != "cdrom" {
        assert!(
            Instant::now() < deadline,
            "no cold restart: {:?}",
            live_boot(n)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lv.power(n, PowerAction::ForceRestart).await.unwrap();
    assert_eq!(live_boot(n), ["cdrom", "hd", "network"]);
    assert_eq!(lv.get(n).await.unwrap().unwrap().boot, cd);
    lv.undefine(&d).await.unwrap();
}

#[tokio::test]
async fn media_insert_and_eject() {
    let (lv, d) = defined("m-media").await;
    let n = d.name.as_str();
    let media = Media {
        image: "http://127.0.0.1:1/boot.iso?a=1&b=2".into(),
        file: "/var/lib/vinod/redfish/media/m.iso".into(),
    };
    lv.insert_media(n, &media).await.unwrap();
    assert_eq!(lv.get(n).await.unwrap().unwrap().media, Some(media.clone()));
    let inactive = xml(n, virt::sys::VIR_DOMAIN_XML_INACTIVE);
    assert!(inactive.contains("device='cdrom'"), "{inactive}");
    assert!(inactive.contains("/var/lib/vinod/redfish/media/m.iso"));
    assert_eq!(lv.eject_media(n).await.unwrap(), Some(media));
    assert_eq!(lv.get(n).await.unwrap().unwrap().media, None);
    assert!(!xml(n, virt::sys::VIR_DOMAIN_XML_INACTIVE).contains("cdrom"));
    assert_eq!(lv.eject_media(n).await.unwrap(), None);
    lv.undefine(&d).await.unwrap();
}

#[tokio::test]
async fn bmc_state_leaves_the_spec_hash_alone_and_survives_redefine() {
    let (lv, d) = defined("m-redefine").await;
    let n = d.name.as_str();
    let pxe = BootOverride {
        target: BootTarget::Pxe,
        enabled: BootEnabled::Continuous,
        mode: BootMode::Legacy,
    };
    lv.set_boot(n, pxe).await.unwrap();
    let media = Media {
        image: "http://127.0.0.1:1/x.iso".into(),
        file: "/tmp/x.iso".into(),
    };
    lv.insert_media(n, &media).await.unwrap();
    let bios = BiosSettings {
        current: [("NumLock".to_string(), "Off".to_string())].into(),
        pending: [("QuietBoot".to_string(), "Enabled".to_string())].into(),
    };
    lv.set_bios(n, bios.clone()).await.unwrap();
    let observed = lv.observe().await.unwrap().1;
    assert_eq!(
        observed[n].spec_hash, d.spec_hash,
        "reconcile sees no change"
    );
    // The Vino changes: reconcile redefines with a fresh rendering.
    let bigger = domain("m-redefine", 256);
    assert_ne!(bigger.spec_hash, d.spec_hash);
    lv.redefine(&bigger).await.unwrap();
    let m = lv.get(n).await.unwrap().unwrap();
    assert_eq!(m.memory_mib, 256);
    assert_eq!(m.boot, pxe);
    assert_eq!(m.media, Some(media));
    assert_eq!(m.bios, bios);
    assert_eq!(persistent_boot(n), ["network", "hd"]);
    assert_eq!(lv.observe().await.unwrap().1[n].spec_hash, bigger.spec_hash);
    lv.undefine(&bigger).await.unwrap();
}
