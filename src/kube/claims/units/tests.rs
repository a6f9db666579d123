use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::*;
use crate::ipam::{AddrRange, DhcpSpan, nic_key};

fn pool() -> Pool {
    Pool {
        network: "pxe".into(),
        subnet: "10.20.0.0/16".parse().unwrap(),
        static_range: AddrRange {
            start: Ipv4Addr::new(10, 20, 0, 10),
            end: Ipv4Addr::new(10, 20, 0, 40),
        },
        dhcp: Some(DhcpSpan {
            range: AddrRange {
                start: Ipv4Addr::new(10, 20, 1, 0),
                end: Ipv4Addr::new(10, 20, 1, 255),
            },
            bit_step: 4,
        }),
        mac_base: "52:54:00:20:00:00".parse().unwrap(),
    }
}

fn vino() -> ClaimVino {
    ClaimVino {
        namespace: "lab".into(),
        name: "rack".into(),
        uid: "u1".into(),
    }
}

fn holder() -> Holder {
    Holder {
        name: "host-a".into(),
        uid: "n1".into(),
        share: None,
    }
}

fn claims() -> HostClaims {
    HostClaims {
        block: Some(2),
        addresses: BTreeMap::from([
            (ipam::bridge_key(), Ipv4Addr::new(10, 20, 0, 10)),
            (nic_key("vm-0", "eth0"), Ipv4Addr::new(10, 20, 0, 11)),
        ]),
        ..Default::default()
    }
}

#[test]
fn objects_hold_the_claims_and_give_them_back() {
    let pools = BTreeMap::from([("pxe".to_string(), pool())]);
    let mine = BTreeMap::from([("pxe".to_string(), claims())]);
    let objects = wanted(&mine, &pools, &vino(), &holder(), &BTreeMap::new());
    let names: Vec<&String> = objects.keys().collect();
    assert_eq!(
        names,
        ["dhcp-10-20-1-32-16", "ip-10-20-0-10", "ip-10-20-0-11"]
    );
    let nic = &objects["ip-10-20-0-11"];
    assert_eq!(nic.spec.mac.as_deref(), Some("52:54:0a:14:00:0b"));
    assert_eq!(objects["ip-10-20-0-10"].spec.mac, None);
    let owner = &nic.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Node", "n1"));
    let labels = nic.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["vino.airshipit.org/node"], "host-a");
    assert_eq!(labels["vino.airshipit.org/pool"], "10.20.0.0-16");

    let held: Vec<VinoPoolClaim> = objects.into_values().collect();
    let back = own_claims(&held, &pools, &BTreeMap::new());
    let mut want = claims();
    want.macs.insert(
        nic_key("vm-0", "eth0"),
        "52:54:0a:14:00:0b".parse().unwrap(),
    );
    assert_eq!(back["pxe"], want);
}

#[test]
fn carried_over_addresses_keep_the_pools_mac() {
    let pools = BTreeMap::from([("pxe".to_string(), pool())]);
    let mine = BTreeMap::from([("pxe".to_string(), claims())]);
    let objects = wanted(&mine, &pools, &vino(), &holder(), &mine);
    assert_eq!(
        objects["ip-10-20-0-11"].spec.mac.as_deref(),
        Some("52:54:00:20:00:01")
    );
}

#[test]
fn others_units_are_taken_where_they_overlap() {
    let pools = BTreeMap::from([("pxe".to_string(), pool())]);
    let other = Holder {
        name: "host-b".into(),
        uid: "n2".into(),
        share: None,
    };
    let theirs = HostClaims {
        block: Some(0),
        addresses: BTreeMap::from([(ipam::bridge_key(), Ipv4Addr::new(10, 20, 0, 12))]),
        ..Default::default()
    };
    let mut foreign: Vec<VinoPoolClaim> = wanted(
        &BTreeMap::from([("pxe".to_string(), theirs)]),
        &pools,
        &vino(),
        &other,
        &BTreeMap::new(),
    )
    .into_values()
    .collect();
    // Another Vino's block of 32 over this span's blocks 2 and 3, and the static range.
    let mut wide = foreign[0].clone();
    wide.spec.block = Some(ClaimBlock {
        start: Ipv4Addr::new(10, 20, 1, 32),
        size: 32,
    });
    let mut over_static = wide.clone();
    over_static.spec.block = Some(ClaimBlock {
        start: Ipv4Addr::new(10, 20, 0, 32),
        size: 16,
    });
    foreign.extend([wide, over_static]);
    let taken = &taken(&foreign, &pools)["pxe"];
    let blocks: BTreeSet<u32> = taken.values().filter_map(|c| c.block).collect();
    assert_eq!(blocks, BTreeSet::from([0, 2, 3]));
    let ips: BTreeSet<Ipv4Addr> = taken
        .values()
        .flat_map(|c| c.addresses.values().copied())
        .collect();
    assert!(ips.contains(&Ipv4Addr::new(10, 20, 0, 12)));
    assert!(ips.contains(&Ipv4Addr::new(10, 20, 0, 40)));
    assert!(!ips.contains(&Ipv4Addr::new(10, 20, 0, 31)));
    assert_eq!(ips.len(), 1 + 9);
}

#[test]
fn units_that_no_longer_fit_are_left_out() {
    let pools = BTreeMap::from([("pxe".to_string(), pool())]);
    let mine = BTreeMap::from([("pxe".to_string(), claims())]);
    let mut held: Vec<VinoPoolClaim> = wanted(&mine, &pools, &vino(), &holder(), &BTreeMap::new())
        .into_values()
        .collect();
    held[0].spec.block = Some(ClaimBlock {
        start: Ipv4Addr::new(10, 20, 1, 40),
        size: 16,
    });
    let back = own_claims(&held, &pools, &BTreeMap::new());
    assert_eq!(back["pxe"].block, None);
    assert!(own_claims(&held, &BTreeMap::new(), &BTreeMap::new()).is_empty());
}
