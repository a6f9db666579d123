//! Combining the plans of every Vino on a host into one desired host state. A Vino that could
//! not be planned is frozen: what it owns now stays as it is, so a bad spec never destroys
//! running VMs. Two Vinos that want the same bridge or domain name conflict; the later one (in
//! namespace/name order) is frozen and reported.

use super::VinoPlan;
use crate::state::{HostState, Owner};

/// A name wanted by two Vinos.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The Vino that keeps the name.
    pub holder: Owner,
    /// The Vino that was frozen.
    pub frozen: Owner,
    /// What clashed, e.g. `bridge vm-infra`.
    pub what: String,
}

/// The desired host state for `plans` (sorted by owner), keeping `observed` objects of the
/// `frozen` Vinos; returns it with the conflicts found (whose later Vinos were frozen too).
pub fn merge(
    plans: &[VinoPlan],
    frozen: &[Owner],
    observed: &HostState,
) -> (HostState, Vec<Conflict>) {
    let mut frozen: Vec<Owner> = frozen.to_vec();
    let mut conflicts = Vec::new();
    let mut sorted: Vec<&VinoPlan> = plans.iter().collect();
    sorted.sort_by(|a, b| a.owner.cmp(&b.owner));
    let mut out = keep(observed, &frozen);
    for p in sorted {
        if frozen.contains(&p.owner) {
            continue;
        }
        let clash = first_clash(&out, &p.host);
        if let Some((holder, what)) = clash {
            conflicts.push(Conflict {
                holder,
                frozen: p.owner.clone(),
                what,
            });
            frozen.push(p.owner.clone());
            extend(&mut out, &keep(observed, std::slice::from_ref(&p.owner)));
            continue;
        }
        extend(&mut out, &p.host);
    }
    (out, conflicts)
}

fn keep(observed: &HostState, owners: &[Owner]) -> HostState {
    let mut out = HostState::default();
    for o in owners {
        extend(&mut out, &observed.owned_by(o));
    }
    out
}

fn first_clash(have: &HostState, add: &HostState) -> Option<(Owner, String)> {
    for (name, b) in &add.bridges {
        if let Some(h) = have.bridges.get(name).filter(|h| h.owner != b.owner) {
            return Some((h.owner.clone(), format!("bridge {name}")));
        }
    }
    for (name, d) in &add.domains {
        if let Some(h) = have.domains.get(name).filter(|h| h.owner != d.owner) {
            return Some((h.owner.clone(), format!("domain {name}")));
        }
    }
    for (name, v) in &add.volumes {
        if let Some(h) = have.volumes.get(name).filter(|h| h.owner != v.owner) {
            return Some((h.owner.clone(), format!("volume {name}")));
        }
    }
    None
}

fn extend(out: &mut HostState, add: &HostState) {
    out.bridges
        .extend(add.bridges.iter().map(|(k, v)| (k.clone(), v.clone())));
    out.dhcp
        .extend(add.dhcp.iter().map(|(k, v)| (k.clone(), v.clone())));
    out.volumes
        .extend(add.volumes.iter().map(|(k, v)| (k.clone(), v.clone())));
    out.domains
        .extend(add.domains.iter().map(|(k, v)| (k.clone(), v.clone())));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Bridge, Domain};

    fn owner(n: &str) -> Owner {
        Owner {
            namespace: "ns".into(),
            name: n.into(),
        }
    }

    fn host(o: &str, bridge: &str, domain: &str, hash: &str) -> HostState {
        let mut h = HostState::default();
        h.bridges.insert(
            bridge.into(),
            Bridge {
                name: bridge.into(),
                address: "192.168.9.1/24".parse().unwrap(),
                mtu: None,
                uplink: None,
                owner: owner(o),
            },
        );
        h.domains.insert(
            domain.into(),
            Domain {
                name: domain.into(),
                uuid: "u".into(),
                owner: owner(o),
                spec_hash: hash.into(),
                xml: String::new(),
                pinned_cpus: Default::default(),
                running: false,
            },
        );
        h
    }

    fn plan(o: &str, h: HostState) -> VinoPlan {
        VinoPlan {
            owner: owner(o),
            node: "n".into(),
            vms: vec![],
            host: h,
            bare_metal_hosts: vec![],
            secrets: vec![],
            claims: Default::default(),
            pinned_cpus: Default::default(),
            warnings: vec![],
            departing: vec![],
            hardware: vec![],
        }
    }

    #[test]
    fn frozen_vino_keeps_what_it_has() {
        let observed = host("bad", "br-bad", "ns.bad.vm-0", "old");
        let (desired, conflicts) = merge(
            &[plan("good", host("good", "br-good", "ns.good.vm-0", "h"))],
            &[owner("bad")],
            &observed,
        );
        assert!(conflicts.is_empty());
        assert_eq!(desired.domains["ns.bad.vm-0"].spec_hash, "old");
        assert!(desired.domains.contains_key("ns.good.vm-0"));
        assert!(
            super::super::diff::diff(&desired, &observed)
                .iter()
                .all(|op| !op.is_delete())
        );
    }

    #[test]
    fn second_claimant_of_a_bridge_is_frozen() {
        let (desired, conflicts) = merge(
            &[
                plan("b", host("b", "br0", "ns.b.vm-0", "h")),
                plan("a", host("a", "br0", "ns.a.vm-0", "h")),
            ],
            &[],
            &HostState::default(),
        );
        assert_eq!(
            conflicts,
            vec![Conflict {
                holder: owner("a"),
                frozen: owner("b"),
                what: "bridge br0".into()
            }]
        );
        assert_eq!(desired.bridges["br0"].owner, owner("a"));
        assert!(!desired.domains.contains_key("ns.b.vm-0"));
    }
}
