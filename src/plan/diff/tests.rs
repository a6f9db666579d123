use std::collections::BTreeMap;

use super::*;
use crate::state::Owner;

fn owner(n: &str) -> Owner {
    Owner {
        namespace: "ns".into(),
        name: n.into(),
    }
}

fn state(vms: u32, o: &str) -> HostState {
    let mut s = HostState::default();
    s.bridges.insert(
        "br0".into(),
        Bridge {
            name: "br0".into(),
            address: "192.168.9.1/24".parse().unwrap(),
            mtu: None,
            uplink: None,
            owner: owner(o),
        },
    );
    let hosts: BTreeMap<String, String> = (0..vms)
        .map(|i| {
            (
                format!("vm{i}"),
                format!("52:54:00:00:00:0{i},192.168.9.{},vm{i}\n", 10 + i),
            )
        })
        .collect();
    s.dhcp.insert(
        "br0".into(),
        DhcpServer {
            bridge: "br0".into(),
            network: "n".into(),
            owner: owner(o),
            config: "interface=br0\n".into(),
            hostsdir: "/run/vinod/dnsmasq/br0/hosts".into(),
            leasefile: "/var/lib/vinod/dnsmasq/br0.leases".into(),
            hosts,
        },
    );
    for i in 0..vms {
        let name = format!("ns.{o}.vm-{i}");
        s.volumes.insert(
            format!("{name}-root.qcow2"),
            Volume {
                name: format!("{name}-root.qcow2"),
                capacity_bytes: 1 << 30,
                sparse: true,
                owner: owner(o),
            },
        );
        s.domains.insert(
            name.clone(),
            Domain {
                name,
                uuid: format!("u{i}"),
                owner: owner(o),
                spec_hash: "h1".into(),
                xml: "<domain/>".into(),
                pinned_cpus: Default::default(),
                running: false,
            },
        );
    }
    s
}

/// What the adapters report for a desired state: no XML, the kernel's MTU.
fn as_observed(d: &HostState) -> HostState {
    let mut o = d.clone();
    for b in o.bridges.values_mut() {
        b.mtu.get_or_insert(1500);
    }
    for dom in o.domains.values_mut() {
        dom.xml.clear();
    }
    o
}

fn kinds(ops: &[Op]) -> Vec<String> {
    ops.iter().map(|o| o.to_string()).collect()
}

#[test]
fn builds_in_dependency_order() {
    let ops = diff(&state(2, "a"), &HostState::default());
    assert_eq!(
        kinds(&ops),
        [
            "create bridge br0",
            "start DHCP on br0",
            "create volume ns.a.vm-0-root.qcow2",
            "create volume ns.a.vm-1-root.qcow2",
            "define domain ns.a.vm-0",
            "define domain ns.a.vm-1",
        ]
    );
}

#[test]
fn second_pass_is_empty() {
    let d = state(3, "a");
    assert!(diff(&d, &as_observed(&d)).is_empty());
}

#[test]
fn tears_down_in_reverse_order() {
    let ops = diff(&HostState::default(), &as_observed(&state(1, "a")));
    assert_eq!(
        kinds(&ops),
        [
            "delete domain ns.a.vm-0",
            "delete volume ns.a.vm-0-root.qcow2",
            "stop DHCP on br0",
            "delete bridge br0"
        ]
    );
    assert!(ops.iter().all(Op::is_delete));
}

#[test]
fn scale_down_touches_only_what_goes() {
    let ops = diff(&state(2, "a"), &as_observed(&state(4, "a")));
    assert_eq!(
        kinds(&ops),
        [
            "delete domain ns.a.vm-2",
            "delete domain ns.a.vm-3",
            "delete volume ns.a.vm-2-root.qcow2",
            "delete volume ns.a.vm-3-root.qcow2",
            "update DHCP reservations on br0",
        ]
    );
}

#[test]
fn changes_become_updates() {
    let mut d = state(1, "a");
    d.domains.get_mut("ns.a.vm-0").unwrap().spec_hash = "h2".into();
    d.bridges.get_mut("br0").unwrap().mtu = Some(9000);
    d.dhcp.get_mut("br0").unwrap().config.push_str("log-dhcp\n");
    d.volumes
        .get_mut("ns.a.vm-0-root.qcow2")
        .unwrap()
        .capacity_bytes = 2 << 30;
    let ops = diff(&d, &as_observed(&state(1, "a")));
    assert_eq!(
        kinds(&ops),
        [
            "update bridge br0",
            "reconfigure DHCP on br0",
            "redefine domain ns.a.vm-0"
        ]
    );
}

#[test]
fn a_new_owner_never_adopts() {
    let ops = diff(&state(0, "b"), &as_observed(&state(0, "a")));
    assert_eq!(
        kinds(&ops),
        [
            "stop DHCP on br0",
            "delete bridge br0",
            "create bridge br0",
            "start DHCP on br0"
        ]
    );
}
