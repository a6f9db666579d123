//! Sticky CPU pins through the whole planner: plans fed the pins their previous plans gave.

use std::collections::BTreeMap;

use super::*;
use crate::api::{Vino, parse_vino};
use crate::plan::cpu::CpuLedger;
use crate::plan::{NodeFacts, NumaNode, PlanError};
use crate::value::cpuset::CpuSet;

/// The shipped example (one master, two workers, one vCPU each) pinned away from CPU 0.
fn demo(name: &str, masters: u32, worker_vcpus: u32) -> Vino {
    let mut v = parse_vino(include_str!("../../../examples/vino.yaml")).unwrap();
    v.metadata.name = Some(name.into());
    v.spec.configuration =
        Some(serde_json::from_value(serde_json::json!({"cpuExclude": "0"})).unwrap());
    v.spec.nodes[0].count = masters;
    v.spec.flavors.insert(
        "big".into(),
        serde_json::from_value(
            serde_json::json!({"vcpus": worker_vcpus, "memoryMiB": 256, "rootDiskGiB": 1}),
        )
        .unwrap(),
    );
    v.spec.nodes[1].flavor = Some("big".into());
    // Each test Vino gets its own bridge so two can share the host.
    v.spec.networks[0].bridge_name = Some(format!("vinod-{name}"));
    v
}

fn node(cpus: &str) -> NodeFacts {
    NodeFacts {
        name: "host-a".into(),
        addresses: vec!["192.0.2.10".parse().unwrap()],
        numa: vec![NumaNode {
            id: 0,
            cpus: cpus.parse().unwrap(),
        }],
        ..Default::default()
    }
}

/// Plans `vino` on a host whose existing domains are `host` (all of them present Vinos').
fn plan_on(vino: &Vino, node: &NodeFacts, host: &HostState) -> Result<VinoPlan, PlanError> {
    let owner = Owner {
        namespace: "default".into(),
        name: vino.metadata.name.clone().unwrap_or_default(),
    };
    let owners: Vec<Owner> = host.domains.values().map(|d| d.owner.clone()).collect();
    let ledger = CpuLedger::new(host, &owners);
    plan(PlanInput {
        vino,
        node,
        config: &Config::default(),
        claims: &BTreeMap::new(),
        credentials: None,
        taken_cpus: &ledger.taken_for(&owner),
        current_pins: ledger.current(),
        host_network: &Default::default(),
        retained: &[],
    })
}

fn pins(p: &VinoPlan) -> BTreeMap<String, CpuSet> {
    p.host
        .domains
        .values()
        .map(|d| (d.name.clone(), d.pinned_cpus.clone()))
        .collect()
}

#[test]
fn adding_and_removing_a_master_moves_no_other_vm() {
    let host = node("0-7");
    let one = plan_on(&demo("a", 1, 1), &host, &HostState::default()).unwrap();
    let two = plan_on(&demo("a", 2, 1), &host, &one.host).unwrap();
    let back = plan_on(&demo("a", 1, 1), &host, &two.host).unwrap();
    let (one, two, back) = (pins(&one), pins(&two), pins(&back));
    assert_eq!(two.len(), 4);
    for (vm, cpus) in &one {
        assert_eq!(&two[vm], cpus, "{vm} moved when a master was added");
    }
    let new: Vec<_> = two
        .iter()
        .filter(|(vm, _)| !one.contains_key(*vm))
        .collect();
    assert_eq!(new.len(), 1);
    assert!(
        one.values()
            .all(|c| !c.contains(new[0].1.iter().next().unwrap()))
    );
    assert_eq!(back, one, "removing the master moved a VM");
}

#[test]
fn a_frozen_vinos_cpus_are_not_handed_out() {
    let host = node("0-6");
    let a = plan_on(&demo("a", 1, 1), &host, &HostState::default()).unwrap();
    // Vino a fails to plan from now on; only its running domains remain.
    let b = plan_on(&demo("b", 1, 1), &host, &a.host).unwrap();
    assert!(a.pinned_cpus.iter().all(|c| !b.pinned_cpus.contains(c)));
    // Three CPUs left after a's three and the excluded one: a third VM for b does not fit.
    let e = plan_on(&demo("b", 2, 1), &host, &a.host).unwrap_err();
    assert!(matches!(e, PlanError::Pinning(_)), "{e}");
}

#[test]
fn a_bigger_flavor_takes_free_cpus_or_is_reported() {
    let before = plan_on(&demo("a", 1, 1), &node("0-5"), &HostState::default()).unwrap();
    let grown = plan_on(&demo("a", 1, 2), &node("0-5"), &before.host).unwrap();
    let (old, new) = (pins(&before), pins(&grown));
    let master = old.keys().find(|k| k.contains("master")).unwrap();
    assert_eq!(new[master], old[master]);
    let workers: Vec<&CpuSet> = new
        .iter()
        .filter(|(k, _)| k.contains("worker"))
        .map(|(_, c)| c)
        .collect();
    assert!(workers.iter().all(|c| c.len() == 2 && !c.contains(0)));
    assert_eq!(grown.pinned_cpus.len(), 5);
    // Three vCPUs per worker need seven CPUs; the host has five to give: reported, not taken.
    let e = plan_on(&demo("a", 1, 3), &node("0-5"), &before.host).unwrap_err();
    assert!(matches!(e, PlanError::Pinning(_)), "{e}");
}

#[test]
fn an_ipv6_boot_image_host_is_bracketed_in_the_boot_url() {
    let mut v = demo("v6", 1, 1);
    v.spec.pxe_boot_image_host = Some("fe80::1".into());
    v.spec.pxe_boot_image_host_port = Some(8080);
    let p = plan_on(&v, &node("0-7"), &HostState::default()).unwrap();
    let config = &p.host.dhcp.values().next().unwrap().config;
    assert!(
        config.contains("http://[fe80::1]:8080/dualboot.ipxe"),
        "{config}"
    );
    v.spec.pxe_boot_image_host = Some("boot.example".into());
    let p = plan_on(&v, &node("0-7"), &HostState::default()).unwrap();
    let config = &p.host.dhcp.values().next().unwrap().config;
    assert!(
        config.contains("http://boot.example:8080/dualboot.ipxe"),
        "{config}"
    );
    // Ironic's own boot script.
    v.spec.pxe_boot_image_path = Some("boot.ipxe".into());
    let p = plan_on(&v, &node("0-7"), &HostState::default()).unwrap();
    let config = &p.host.dhcp.values().next().unwrap().config;
    assert!(
        config.contains("http://boot.example:8080/boot.ipxe"),
        "{config}"
    );
    // Free text never reaches dnsmasq's configuration.
    for bad in [
        "/boot.ipxe",
        "a/../b",
        "boot.ipxe\ndhcp-script=/x",
        "x y",
        "a//b",
    ] {
        v.spec.pxe_boot_image_path = Some(bad.into());
        let e = plan_on(&v, &node("0-7"), &HostState::default()).unwrap_err();
        assert!(
            e.to_string().contains("spec.pxeBootImagePath"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn the_bmc_driver_names_the_bare_metal_hosts_address_scheme() {
    let mut v = demo("vm", 1, 1);
    let p = plan_on(&v, &node("0-7"), &HostState::default()).unwrap();
    let address = &p.bare_metal_hosts[0].spec.bmc.address;
    assert!(
        address.starts_with("redfish+https://192.0.2.10:8000/redfish/v1/Systems/"),
        "{address}"
    );
    v.spec.bmc_driver = Some(crate::api::vino::BmcDriver::RedfishVirtualMedia);
    let p = plan_on(&v, &node("0-7"), &HostState::default()).unwrap();
    for bmh in &p.bare_metal_hosts {
        let address = &bmh.spec.bmc.address;
        assert!(
            address.starts_with("redfish-virtualmedia+https://192.0.2.10:8000/redfish/v1/Systems/"),
            "{address}"
        );
        assert!(
            crate::api::bmh::webhook_check(bmh, None).is_empty(),
            "{address}"
        );
    }
}

#[test]
fn bare_metal_hosts_skip_inspection_and_cleaning_unless_the_vino_asks() {
    use crate::api::bmh::INSPECT_ANNOTATION;
    use crate::api::vino::{CleaningMode, Inspection, Metal3Options};
    let mut v = demo("m3", 1, 1);
    let p = plan_on(&v, &node("0-7"), &HostState::default()).unwrap();
    for bmh in &p.bare_metal_hosts {
        let annotations = bmh.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations.get(INSPECT_ANNOTATION).map(String::as_str),
            Some("disabled")
        );
        assert_eq!(
            bmh.spec.automated_cleaning_mode.as_deref(),
            Some("disabled")
        );
    }
    v.spec.metal3 = Some(Metal3Options {
        inspection: Some(Inspection::Agent),
        automated_cleaning_mode: Some(CleaningMode::Metadata),
        release_provisioned: None,
    });
    let p = plan_on(&v, &node("0-7"), &HostState::default()).unwrap();
    for bmh in &p.bare_metal_hosts {
        assert!(
            bmh.metadata.annotations.is_none(),
            "{:?}",
            bmh.metadata.annotations
        );
        assert_eq!(
            bmh.spec.automated_cleaning_mode.as_deref(),
            Some("metadata")
        );
        assert!(crate::api::bmh::webhook_check(bmh, None).is_empty());
    }
}

#[test]
fn uefi_vms_get_efi_firmware_and_their_hosts_say_so() {
    let mut v = demo("efi", 1, 1);
    let p = plan_on(&v, &node("0-7"), &HostState::default()).unwrap();
    assert!(
        p.bare_metal_hosts
            .iter()
            .all(|h| h.spec.boot_mode.as_deref() == Some("legacy"))
    );
    assert!(
        p.host
            .domains
            .values()
            .all(|d| !d.xml.contains("firmware='efi'"))
    );
    v.spec.boot_mode = Some(crate::api::vino::BootMode::Uefi);
    let p = plan_on(&v, &node("0-7"), &HostState::default()).unwrap();
    assert!(
        p.bare_metal_hosts
            .iter()
            .all(|h| h.spec.boot_mode.as_deref() == Some("UEFI"))
    );
    assert!(
        p.host
            .domains
            .values()
            .all(|d| d.xml.contains("<os firmware='efi'>"))
    );
}

#[test]
fn a_retained_vm_beyond_count_is_planned_as_before() {
    let host = node("0-7");
    let before = plan_on(&demo("a", 1, 1), &host, &HostState::default()).unwrap();
    let mut down = demo("a", 1, 1);
    down.spec.nodes[1].count = 1;
    let retained = [("worker".to_string(), 1), ("gone".to_string(), 0)];
    let p = plan(PlanInput {
        vino: &down,
        node: &host,
        config: &Config::default(),
        claims: &before
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), BTreeMap::from([(host.name.clone(), v.clone())])))
            .collect(),
        credentials: None,
        taken_cpus: &CpuSet::default(),
        current_pins: &pins(&before),
        host_network: &Default::default(),
        retained: &retained,
    })
    .unwrap();
    let names: Vec<&str> = p.vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "default.a.master-0",
            "default.a.worker-0",
            "default.a.worker-1"
        ]
    );
    assert_eq!(
        p.host.domains["default.a.worker-1"],
        before.host.domains["default.a.worker-1"]
    );
    assert_eq!(p.bare_metal_hosts.len(), 3);
    let without = plan_on(&down, &host, &HostState::default()).unwrap();
    assert_eq!(without.vms.len(), 2);
}
