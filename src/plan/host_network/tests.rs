//! The host-network guard through the whole planner.

use std::collections::BTreeMap;

use crate::api::{Vino, parse_vino};
use crate::config::Config;
use crate::plan::{
    HostInterface, HostNetwork, HostRoute, NodeFacts, PlanError, PlanInput, VinoPlan, plan,
};
use crate::value::cpuset::CpuSet;

/// The shipped example: network `provisioning` on 192.168.150.0/24, with `uplink` enslaved.
fn vino(uplink: Option<&str>) -> Vino {
    let mut v = parse_vino(include_str!("../../../examples/vino.yaml")).unwrap();
    v.spec.networks[0].physical_interface = uplink.map(Into::into);
    v
}

fn plan_with(vino: &Vino, host: &HostNetwork, config: &Config) -> Result<VinoPlan, PlanError> {
    plan(PlanInput {
        vino,
        node: &NodeFacts {
            name: "host-a".into(),
            addresses: vec!["192.0.2.10".parse().unwrap()],
            ..Default::default()
        },
        config,
        claims: &BTreeMap::new(),
        credentials: None,
        taken_cpus: &CpuSet::default(),
        current_pins: &BTreeMap::new(),
        host_network: host,
        retained: &[],
    })
}

/// A host with `eth0` on 10.9.0.1/24 (default route through it), `eth1` bare, and a route to
/// 172.16.0.0/16 via `eth0`.
fn host() -> HostNetwork {
    HostNetwork {
        interfaces: vec![
            HostInterface {
                name: "eth0".into(),
                addresses: vec!["10.9.0.1/24".parse().unwrap()],
            },
            HostInterface {
                name: "eth1".into(),
                addresses: vec![],
            },
        ],
        routes: vec![
            route("0.0.0.0/0", "eth0"),
            route("10.9.0.0/24", "eth0"),
            route("172.16.0.0/16", "eth0"),
        ],
    }
}

fn route(destination: &str, interface: &str) -> HostRoute {
    HostRoute {
        destination: destination.parse().unwrap(),
        interface: interface.into(),
    }
}

/// The refusal's field and reason.
fn refusal(result: Result<VinoPlan, PlanError>) -> (String, String) {
    match result {
        Err(PlanError::HostNetwork { field, reason }) => (field, reason),
        other => panic!("expected a host-network refusal, got {other:?}"),
    }
}

/// The example with its network moved to `<octets>.0/24` (ranges moved with it).
fn on_subnet(octets: &str) -> Vino {
    let text =
        include_str!("../../../examples/vino.yaml").replace("192.168.150.", &format!("{octets}."));
    parse_vino(&text).unwrap()
}

#[test]
fn a_separate_subnet_and_a_bare_uplink_are_planned() {
    let p = plan_with(&vino(Some("eth1")), &host(), &Config::default()).unwrap();
    assert_eq!(
        p.host.bridges.values().next().unwrap().uplink.as_deref(),
        Some("eth1")
    );
}

#[test]
fn a_subnet_overlapping_the_hosts_address_is_refused() {
    let (field, reason) = refusal(plan_with(&on_subnet("10.9.0"), &host(), &Config::default()));
    assert_eq!(field, "spec.networks[0].subnet");
    assert!(reason.contains("10.9.0.1/24 on eth0"), "{reason}");
}

#[test]
fn a_subnet_overlapping_a_route_is_refused_but_the_default_route_takes_nothing() {
    let (field, reason) = refusal(plan_with(
        &on_subnet("172.16.8"),
        &host(),
        &Config::default(),
    ));
    assert_eq!(field, "spec.networks[0].subnet");
    assert!(reason.contains("172.16.0.0/16 via eth0"), "{reason}");
    plan_with(&on_subnet("172.17.8"), &host(), &Config::default()).unwrap();
}

#[test]
fn an_interface_the_host_uses_is_never_an_uplink() {
    let (field, reason) = refusal(plan_with(&vino(Some("eth0")), &host(), &Config::default()));
    assert_eq!(field, "spec.networks[0].physicalInterface");
    assert!(reason.contains("10.9.0.1/24"), "{reason}");
    let mut routed_only = host();
    routed_only.interfaces[0].addresses.clear();
    let (_, reason) = refusal(plan_with(
        &vino(Some("eth0")),
        &routed_only,
        &Config::default(),
    ));
    assert!(reason.contains("routes 0.0.0.0/0 via eth0"), "{reason}");
}

#[test]
fn allow_lists_narrow_uplinks_and_subnets() {
    let mut config = Config::default();
    config.network.uplinks = vec!["eth2".into()];
    config.network.subnets = vec!["192.168.0.0/16".parse().unwrap()];
    let (field, reason) = refusal(plan_with(&vino(Some("eth1")), &host(), &config));
    assert_eq!(field, "spec.networks[0].physicalInterface");
    assert!(
        reason.contains("network.uplinks") && reason.contains("eth2"),
        "{reason}"
    );
    let (field, reason) = refusal(plan_with(&on_subnet("172.17.8"), &host(), &config));
    assert_eq!(field, "spec.networks[0].subnet");
    assert!(
        reason.contains("network.subnets") && reason.contains("192.168.0.0/16"),
        "{reason}"
    );
    plan_with(&vino(None), &host(), &config).unwrap();
}
