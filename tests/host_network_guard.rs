//! A Vino may not take over the host's own network. The attack: on a host whose uplink has
//! 10.9.0.1/24 (its peer at 10.9.0.2), a Vino on 10.9.0.0/24 would get a bridge whose
//! connected route takes the host's traffic to its peer, and a Vino naming the uplink as
//! `physicalInterface` would enslave it (its address stops working). Both are refused naming
//! the field, nothing is built, and the host still reaches its peer. Operator allow-lists in
//! `[network]` narrow what else a Vino may use.

mod common;

use common::host::{NetNs, Reaper, skip_reason, standalone_pass, vino_yaml};

/// A one-VM Vino `lab/<name>` on bridge `bridge`, on 10.9.0.0/24 (the host's own network).
fn on_host_subnet(name: &str, bridge: &str) -> String {
    vino_yaml(name, bridge, 77, 1, 1).replace("192.168.77.", "10.9.0.")
}

/// A one-VM Vino `lab/<name>` on 192.168.`net`.0/24 whose bridge enslaves `uplink`.
fn with_uplink(name: &str, bridge: &str, net: u8, uplink: &str) -> String {
    let text = vino_yaml(name, bridge, net, 1, 1);
    let line = format!("      bridgeName: {bridge}\n");
    assert!(text.contains(&line));
    text.replace(&line, &format!("{line}      physicalInterface: {uplink}\n"))
}

/// Whether the namespace reaches 10.9.0.2.
fn reaches_peer(ns: &NetNs) -> bool {
    ns.exec(&["busybox", "ping", "-c", "1", "-W", "2", "10.9.0.2"])
        .status
        .success()
}

/// The host namespace with `uplink0` (10.9.0.1/24) wired to a peer namespace (10.9.0.2/24),
/// and a spare interface `spare0` (a veth to `spare1`) with no address.
fn host_with_uplink(tag: &str) -> (NetNs, NetNs) {
    let host = NetNs::new(tag);
    let peer = NetNs::new(&format!("{tag}p"));
    host.ip(&[
        "link", "add", "uplink0", "type", "veth", "peer", "name", "peer0", "netns", &peer.name,
    ]);
    host.ip(&["addr", "add", "10.9.0.1/24", "dev", "uplink0"]);
    host.ip(&["link", "set", "uplink0", "up"]);
    peer.ip(&["addr", "add", "10.9.0.2/24", "dev", "peer0"]);
    peer.ip(&["link", "set", "peer0", "up"]);
    host.ip(&[
        "link", "add", "spare0", "type", "veth", "peer", "name", "spare1",
    ]);
    host.ip(&["link", "set", "spare0", "up"]);
    (host, peer)
}

/// Runs one standalone pass over `docs` with `extra` configuration; returns the status file.
fn one_pass(ns: &NetNs, dir: &std::path::Path, extra: &str, docs: &[String]) -> String {
    // YAML doubles the apostrophe in single-quoted messages.
    standalone_pass(&ns.path(), dir, "vinod-hnet", extra, docs).replace("''", "'")
}

#[test]
fn a_vino_cannot_take_the_hosts_subnet_or_uplink() {
    if let Some(why) = skip_reason() {
        return common::prereq::skip(why);
    }
    let (host, _peer) = host_with_uplink("hnet");
    assert!(reaches_peer(&host), "the test network does not work");
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let status = one_pass(
        &host,
        dir.path(),
        "",
        &[
            on_host_subnet("overlap", "vhn0"),
            with_uplink("uplink", "vhn1", 78, "uplink0"),
            with_uplink("spare", "vhn2", 79, "spare0"),
        ],
    );

    // The two attacks are refused naming the field and what they would take.
    assert_eq!(status.matches("phase: Degraded").count(), 2, "{status}");
    for expected in [
        "spec.networks[0].subnet: 10.9.0.0/24 overlaps the host's address 10.9.0.1/24 on uplink0",
        "spec.networks[0].physicalInterface: uplink0 carries the host's address 10.9.0.1/24",
    ] {
        assert!(
            status.contains(expected),
            "status lacks {expected:?}: {status}"
        );
    }
    // Nothing built for them, the uplink untouched, the peer still reached; the Vino with a
    // free interface got its bridge with that interface as its port.
    let links = host.ip(&["-o", "link", "show"]);
    assert!(
        !links.contains("vhn0") && !links.contains("vhn1"),
        "{links}"
    );
    let uplink = host.ip(&["-o", "link", "show", "uplink0"]);
    assert!(!uplink.contains("master"), "uplink0 was enslaved: {uplink}");
    let spare = host.ip(&["-o", "link", "show", "spare0"]);
    assert!(
        spare.contains("master vhn2"),
        "spare0 is not vhn2's port: {spare}"
    );
    let routes = host.ip(&["route", "show", "10.9.0.0/24"]);
    assert!(
        routes.contains("uplink0") && !routes.contains("vhn"),
        "{routes}"
    );
    assert!(reaches_peer(&host), "the host lost its peer");
}

#[test]
fn operator_allow_lists_narrow_uplinks_and_subnets() {
    if let Some(why) = skip_reason() {
        return common::prereq::skip(why);
    }
    let (host, _peer) = host_with_uplink("hnal");
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let status = one_pass(
        &host,
        dir.path(),
        "[network]\nuplinks = [\"bond9\"]\nsubnets = [\"192.168.80.0/22\"]\n",
        &[
            with_uplink("unlisted", "vhn3", 81, "spare0"),
            vino_yaml("outside", "vhn4", 90, 1, 1),
            vino_yaml("inside", "vhn5", 82, 1, 1),
        ],
    );
    assert_eq!(status.matches("phase: Degraded").count(), 2, "{status}");
    for expected in [
        "spec.networks[0].physicalInterface: spare0 is not in network.uplinks in vinod.toml (bond9)",
        "spec.networks[0].subnet: 192.168.90.0/24 is outside every network of network.subnets in vinod.toml (192.168.80.0/22)",
    ] {
        assert!(
            status.contains(expected),
            "status lacks {expected:?}: {status}"
        );
    }
    let links = host.ip(&["-o", "link", "show"]);
    assert!(
        !links.contains("vhn3") && !links.contains("vhn4"),
        "{links}"
    );
    assert!(
        links.contains("vhn5"),
        "the allowed Vino got no bridge: {links}"
    );
}
