//! A Redfish test bed: vinod-owned VMs on libvirt's test driver (`test:///default`, state
//! per process) and vinod's Redfish server in front of them. Used by the Redfish tests and
//! by `examples/redfish_testbed.rs` (benchmark and interop runs).

// Each user of the bed uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use vinod::config::{Config, LibvirtConfig};
use vinod::host::Hypervisor;
use vinod::host::libvirt::Libvirt;
use vinod::plan::names;
use vinod::redfish::{self, BmcCredentials, Running};
use vinod::render::domain::{DomainSpec, render};
use vinod::render::objects::Credentials;
use vinod::state::{Domain, Owner};
use virt::connect::Connect;
use virt::storage_vol::StorageVol;

/// libvirt's test driver.
pub const URI: &str = "test:///default";

/// The test driver's storage pool, where each VM's disk is made.
pub const POOL: &str = "default-pool";

/// Capacity of each VM's disk (`vda`).
pub const DISK_BYTES: u64 = 12 << 30;

/// The CPU topology every VM is given (one socket, two cores of one thread: its two vCPUs).
const TOPOLOGY: &str = "<cpu><topology sockets='1' dies='1' cores='2' threads='1'/></cpu>";

/// Creates the volume `name` of [`DISK_BYTES`] in the test driver's pool.
fn create_disk(name: &str) {
    let conn = keep_driver_open();
    let pool = conn.lookup_storage_pool_by_name(POOL).expect("test pool");
    let xml = format!(
        "<volume><name>{name}</name><capacity unit='bytes'>{DISK_BYTES}</capacity><allocation>0</allocation><target><format type='raw'/></target></volume>"
    );
    StorageVol::create_xml(&pool, &xml, 0).unwrap_or_else(|e| panic!("volume {name}: {e}"));
}

/// One Vino of the bed: its owner, credentials and VM names.
#[derive(Clone, Debug)]
pub struct BedVino {
    /// Owner.
    pub owner: Owner,
    /// BMC user name.
    pub username: String,
    /// BMC password.
    pub password: String,
    /// Domain names (Redfish System ids).
    pub vms: Vec<String>,
}

/// Keeps one test-driver connection open for the process: its state lives only as long as
/// some connection is open.
pub fn keep_driver_open() -> Connect {
    static CONN: OnceLock<Connect> = OnceLock::new();
    CONN.get_or_init(|| Connect::open(Some(URI)).expect("test driver"))
        .clone()
}

/// The libvirt adapter on the test driver.
pub fn libvirt() -> Libvirt {
    keep_driver_open();
    Libvirt::new(&LibvirtConfig {
        uri: URI.into(),
        console_log_dir: std::env::temp_dir().join("vinod-redfish-bed-console"),
        ..LibvirtConfig::default()
    })
}

/// Defines `per_vino` VMs for each of the Vinos `ns/<name>` and returns them with their
/// credentials (user `admin-<name>`, password `pw-<name>`).
pub async fn define_vinos(ns: &str, vinos: &[&str], per_vino: u32) -> Vec<BedVino> {
    let lv = libvirt();
    let mut out = Vec::new();
    for (v, name) in vinos.iter().enumerate() {
        let owner = Owner {
            namespace: ns.into(),
            name: (*name).into(),
        };
        let mut vms = Vec::new();
        for i in 0..per_vino {
            let vm = names::vm_names(ns, name, "bed", "worker", i);
            let disk = format!("{}.img", vm.domain);
            create_disk(&disk);
            let (xml, spec_hash) = render(&DomainSpec {
                name: vm.domain.clone(),
                uuid: vm.uuid.clone(),
                owner: owner.clone(),
                node: "bed".into(),
                domain_type: "test".into(),
                // The second VM of each Vino is a q35 machine (secure boot needs it).
                machine: if i == 1 { "q35" } else { "pc" }.into(),
                vcpus: 2,
                memory_mib: 2048,
                hugepages: false,
                pinned_cpus: None,
                disks: vec![(POOL.into(), disk, "vda".into())],
                nics: vec![
                    (
                        "br-bed".into(),
                        format!("52:54:00:{v:02x}:{:02x}:01", i % 256),
                    ),
                    (
                        "br-bed2".into(),
                        format!("52:54:00:{v:02x}:{:02x}:02", i % 256),
                    ),
                ],
                console_log: "/tmp/vinod-redfish-bed-console/x.log".into(),
                vnc_listen: None,
                uefi: false,
            });
            let xml = xml.replacen("<os>", &format!("{TOPOLOGY}\n  <os>"), 1);
            let d = Domain {
                name: vm.domain.clone(),
                uuid: vm.uuid,
                owner: owner.clone(),
                spec_hash,
                xml,
                pinned_cpus: Default::default(),
                running: false,
            };
            if let Err(e) = lv.define(&d).await {
                panic!("define {}: {e}", d.name);
            }
            vms.push(vm.domain);
        }
        out.push(BedVino {
            owner,
            username: format!("admin-{name}"),
            password: format!("pw-{name}"),
            vms,
        });
    }
    out
}

/// The credential table for `vinos`.
pub fn credentials(vinos: &[BedVino]) -> BmcCredentials {
    let table = BmcCredentials::default();
    let map: BTreeMap<Owner, Credentials> = vinos
        .iter()
        .map(|v| {
            (
                v.owner.clone(),
                Credentials {
                    username: v.username.clone(),
                    password: v.password.clone(),
                },
            )
        })
        .collect();
    table.replace(&map);
    table
}

/// A configuration for a server on 127.0.0.1:`port` (0: any) with its state in `state_dir`.
pub fn config(state_dir: &Path, port: u16, tls: bool) -> Config {
    let mut c = Config::parse("", "bed").expect("default config");
    c.state_dir = state_dir.to_path_buf();
    c.node_name = "bed".into();
    c.libvirt.uri = URI.into();
    c.redfish.listen_address = Some("127.0.0.1".parse().unwrap());
    c.redfish.advertise_address = Some("127.0.0.1".parse().unwrap());
    c.redfish.port = port;
    c.redfish.tls = tls;
    // The tests' image servers listen on loopback, which a real BMC would never be allowed.
    c.redfish.media_allow = vec!["127.0.0.1/32".parse().unwrap()];
    c
}

/// Starts vinod's Redfish server on the test driver.
pub async fn serve(config: &Config, table: BmcCredentials) -> Running {
    redfish::start(config, libvirt(), table)
        .await
        .expect("Redfish server")
}
