use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;

fn pool(bit_step: u32) -> Pool {
    Pool {
        network: "management".into(),
        subnet: "192.168.2.0/20".parse().unwrap(),
        static_range: AddrRange {
            start: "192.168.2.10".parse().unwrap(),
            end: "192.168.2.24".parse().unwrap(),
        },
        dhcp: Some(DhcpSpan {
            range: AddrRange {
                start: "192.168.4.0".parse().unwrap(),
                end: "192.168.7.255".parse().unwrap(),
            },
            bit_step,
        }),
        mac_base: "52:54:00:06:00:00".parse().unwrap(),
    }
}

fn keys(n: usize) -> BTreeSet<String> {
    std::iter::once(bridge_key())
        .chain((0..n).map(|i| nic_key(&format!("vm-{i}"), "eth0")))
        .collect()
}

#[test]
fn vino_sample_math() {
    let p = pool(4);
    assert_eq!(p.dhcp.unwrap().block_count(), 64);
    assert_eq!(pool(6).dhcp.unwrap().block_count(), 16);
    let c = allocate(&p, &BTreeMap::new(), "node01", &keys(1)).unwrap();
    assert_eq!(c.block, Some(0));
    assert_eq!(
        p.dhcp.unwrap().block(0).to_string(),
        "192.168.4.0-192.168.4.15"
    );
    assert_eq!(c.addresses[&bridge_key()], Ipv4Addr::new(192, 168, 2, 10));
    assert_eq!(
        c.addresses[&nic_key("vm-0", "eth0")],
        Ipv4Addr::new(192, 168, 2, 11)
    );
    assert_eq!(
        p.mac_for(Ipv4Addr::new(192, 168, 2, 11))
            .unwrap()
            .to_string(),
        "52:54:00:06:00:01"
    );
}

#[test]
fn second_host_gets_other_block_and_addresses() {
    let p = pool(4);
    let a = allocate(&p, &BTreeMap::new(), "a", &keys(2)).unwrap();
    let all = BTreeMap::from([("a".to_string(), a.clone())]);
    let b = allocate(&p, &all, "b", &keys(2)).unwrap();
    assert_ne!(b.block, a.block);
    assert!(
        b.addresses
            .values()
            .all(|ip| !a.addresses.values().any(|x| x == ip))
    );
    // The one free address left is found wherever the host starts.
    let mut small = p.clone();
    small.static_range.end = "192.168.2.13".parse().unwrap();
    let c = allocate(&small, &all, "b", &keys(0)).unwrap();
    assert_eq!(c.addresses[&bridge_key()], Ipv4Addr::new(192, 168, 2, 13));
}

#[test]
fn exhaustion_is_reported() {
    let p = pool(4);
    let e = allocate(&p, &BTreeMap::new(), "a", &keys(20)).unwrap_err();
    assert!(
        e.to_string()
            .contains("static range 192.168.2.10-192.168.2.24 is exhausted"),
        "{e}"
    );
    let mut small = pool(8);
    small.dhcp = Some(DhcpSpan {
        range: AddrRange {
            start: "192.168.4.0".parse().unwrap(),
            end: "192.168.4.255".parse().unwrap(),
        },
        bit_step: 8,
    });
    let taken = BTreeMap::from([(
        "a".to_string(),
        HostClaims {
            block: Some(0),
            ..Default::default()
        },
    )]);
    let e = allocate(&small, &taken, "b", &keys(0)).unwrap_err();
    assert!(
        matches!(e, IpamError::BlocksExhausted { blocks: 1, .. }),
        "{e}"
    );
}

#[test]
fn released_claims_and_conflicts() {
    let p = pool(4);
    let a = allocate(&p, &BTreeMap::new(), "a", &keys(3)).unwrap();
    let shrunk = allocate(
        &p,
        &BTreeMap::from([("a".to_string(), a.clone())]),
        "a",
        &keys(1),
    )
    .unwrap();
    assert_eq!(shrunk.addresses.len(), 2);
    assert_eq!(shrunk.addresses[&bridge_key()], a.addresses[&bridge_key()]);
    // Another holder claiming the same units (a forged entry) takes nothing from this host.
    let dup = BTreeMap::from([("a".to_string(), a.clone()), ("b".to_string(), a.clone())]);
    assert_eq!(allocate(&p, &dup, "a", &keys(3)).unwrap(), a);
    assert_eq!(allocate(&p, &dup, "b", &keys(3)).unwrap(), a);
}

#[test]
fn fixed_macs_stay_and_new_claims_spread_out() {
    let p = pool(4);
    let mut a = allocate(&p, &BTreeMap::new(), "a", &keys(1)).unwrap();
    let nic = nic_key("vm-0", "eth0");
    let ip = a.addresses[&nic];
    let fixed: crate::value::syntax::Mac = "02:00:00:00:00:07".parse().unwrap();
    a.macs.insert(nic.clone(), fixed);
    let mine = BTreeMap::from([("a".to_string(), a.clone())]);
    let again = allocate(&p, &mine, "a", &keys(1)).unwrap();
    assert_eq!(again.macs[&nic], fixed);
    assert_eq!(again.addresses[&nic], ip);
    assert_eq!(address_mac(&p, ip).to_string(), "52:54:c0:a8:02:0b");
    // With others in the pool, hosts start at different points.
    let b = allocate(&p, &mine, "host-b", &keys(1)).unwrap();
    let c = allocate(&p, &mine, "host-c", &keys(1)).unwrap();
    assert_ne!(b.block, c.block);
    assert_ne!(b.block, a.block);
}

/// Allocates hosts one after another in the given order, as independent daemons would.
fn allocate_all(p: &Pool, hosts: &[(String, usize)]) -> Result<NetworkClaims, IpamError> {
    let mut all = NetworkClaims::new();
    for (h, n) in hosts {
        let c = allocate(p, &all, h, &keys(*n))?;
        all.insert(h.clone(), c);
    }
    Ok(all)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn hosts_never_overlap(sizes in proptest::collection::vec(0usize..4, 1..8), step in 2u32..7) {
        let mut p = pool(step);
        p.static_range = AddrRange { start: "192.168.2.1".parse().unwrap(), end: "192.168.3.254".parse().unwrap() };
        let hosts: Vec<(String, usize)> = sizes.iter().enumerate().map(|(i, n)| (format!("node{i:02}"), *n)).collect();
        let all = allocate_all(&p, &hosts).unwrap();
        let span = p.dhcp.unwrap();
        let blocks: Vec<AddrRange> = all.values().map(|c| span.block(c.block.unwrap())).collect();
        for (i, a) in blocks.iter().enumerate() {
            for b in &blocks[i + 1..] {
                prop_assert!(!a.overlaps(b), "blocks {} and {} overlap", a, b);
            }
            prop_assert!(span.range.contains(u32::from(a.start)) && span.range.contains(u32::from(a.end)));
        }
        let ips: Vec<Ipv4Addr> = all.values().flat_map(|c| c.addresses.values().copied()).collect();
        let unique: BTreeSet<Ipv4Addr> = ips.iter().copied().collect();
        prop_assert_eq!(ips.len(), unique.len());
        let macs: BTreeSet<String> = ips.iter().map(|ip| p.mac_for(*ip).unwrap().to_string()).collect();
        prop_assert_eq!(macs.len(), ips.len());
    }

    #[test]
    fn stable_when_unrelated_claims_change(n in 0usize..4, others in proptest::collection::vec(0usize..4, 0..6), removed in 0usize..6) {
        let mut p = pool(4);
        p.static_range = AddrRange { start: "192.168.2.1".parse().unwrap(), end: "192.168.3.254".parse().unwrap() };
        let mut hosts: Vec<(String, usize)> = others.iter().enumerate().map(|(i, k)| (format!("other{i}"), *k)).collect();
        hosts.push(("me".to_string(), n));
        let mut all = allocate_all(&p, &hosts).unwrap();
        let mine = all["me"].clone();
        // Another host leaves, and the rest grow: my claims do not move.
        if !others.is_empty() {
            all.remove(&format!("other{}", removed % others.len()));
        }
        let remaining: Vec<String> = hosts.iter().map(|(h, _)| h.clone()).filter(|h| h != "me" && all.contains_key(h)).collect();
        for h in &remaining {
            let grown = allocate(&p, &all, h, &keys(5)).unwrap();
            all.insert(h.clone(), grown);
            prop_assert_eq!(allocate(&p, &all, "me", &keys(n)).unwrap(), mine.clone());
        }
        prop_assert_eq!(allocate(&p, &all, "me", &keys(n)).unwrap(), mine);
    }
}

#[test]
fn hosts_with_shares_take_their_own_parts_and_move_on_only_past_what_they_lose() {
    let p = pool(4);
    let share = |index, parts| {
        BTreeMap::from([(
            "h".to_string(),
            HostClaims {
                share: Some(Share { index, parts }),
                ..Default::default()
            },
        )])
    };
    // Three hosts at once, an empty pool: parts of 5 of the 15 addresses and 21 of 64 blocks.
    let first: Vec<HostClaims> = (0..3)
        .map(|i| allocate(&p, &share(i, 3), "h", &keys(1)).unwrap())
        .collect();
    let starts: Vec<Ipv4Addr> = first.iter().map(|c| c.addresses[&bridge_key()]).collect();
    assert_eq!(
        starts,
        ["192.168.2.10", "192.168.2.15", "192.168.2.20"].map(|a| a.parse::<Ipv4Addr>().unwrap())
    );
    let blocks: Vec<Option<u32>> = first.iter().map(|c| c.block).collect();
    assert_eq!(blocks, [Some(0), Some(21), Some(42)]);
    // Part 1 learns that another host holds .15: it takes the next ones, not a new place.
    let mut all = share(1, 3);
    all.insert(
        "other".into(),
        HostClaims {
            addresses: BTreeMap::from([("x".to_string(), "192.168.2.15".parse().unwrap())]),
            ..Default::default()
        },
    );
    let c = allocate(&p, &all, "h", &keys(1)).unwrap();
    assert_eq!(c.addresses[&bridge_key()], Ipv4Addr::new(192, 168, 2, 16));
}
