//! Between a host's claims on a Vino's networks ([`HostClaims`], what the planner works with)
//! and the `VinoPoolClaim` objects that hold them, one per address or DHCP block.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::Vino;
use crate::api::pool_claim::{
    ClaimBlock, ClaimVino, DHCP_KEY, VinoPoolClaim, VinoPoolClaimSpec, address_claim_name,
    block_claim_name,
};
use crate::api::validate::LABEL_PREFIX;
use crate::ipam::{self, AddrRange, HostClaims, NetworkClaims, Pool};
use crate::kube::KubeError;
use crate::plan::names::label_value;

/// The holder of claims: a Node, by name and UID (the claims' owner).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holder {
    /// Node name.
    pub name: String,
    /// Node UID.
    pub uid: String,
    /// Where in the pools this holder takes new units (see [`crate::ipam::HostClaims::share`]).
    pub share: Option<crate::ipam::Share>,
}

impl Holder {
    /// The owner reference to the Node: its objects go with it.
    pub(crate) fn owner_reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(false),
            block_owner_deletion: Some(false),
        }
    }
}

/// Which Vino claims serve.
pub(super) fn vino_of(vino: &Vino) -> Result<ClaimVino, KubeError> {
    let name = vino.metadata.name.clone().unwrap_or_default();
    let missing = |what| KubeError::Incomplete(name.clone(), what);
    Ok(ClaimVino {
        namespace: vino
            .metadata
            .namespace
            .clone()
            .ok_or_else(|| missing("namespace"))?,
        uid: vino.metadata.uid.clone().ok_or_else(|| missing("uid"))?,
        name: vino.metadata.name.clone().ok_or_else(|| missing("name"))?,
    })
}

/// The pool key of a network: its subnet with the host bits cleared.
pub(super) fn pool_key(pool: &Pool) -> String {
    pool.subnet.trunc().to_string()
}

/// Label selector of the claims in pool `key`.
pub(super) fn pool_selector(key: &str) -> String {
    format!("{LABEL_PREFIX}pool={}", label_value(&key.replace('/', "-")))
}

/// Label selector of `node`'s claims for the Vino `namespace/name` (any UID).
pub(super) fn holder_selector(node: &str, namespace: &str, name: &str) -> String {
    format!(
        "{LABEL_PREFIX}node={},{LABEL_PREFIX}cr-name={},{LABEL_PREFIX}cr-namespace={}",
        label_value(node),
        label_value(name),
        label_value(namespace)
    )
}

/// This host's claims by network, from the objects it holds for the Vino (`held`) and, for
/// networks without any, what it held before claims were objects (`seed`). Objects that no
/// longer fit the network (a changed span, a removed network) are left out, so they are
/// released.
pub(super) fn own_claims(
    held: &[VinoPoolClaim],
    pools: &BTreeMap<String, Pool>,
    seed: &BTreeMap<String, HostClaims>,
) -> BTreeMap<String, HostClaims> {
    let mut out: BTreeMap<String, HostClaims> = BTreeMap::new();
    for o in held {
        let s = &o.spec;
        let Some(pool) = pools.get(&s.network) else {
            continue;
        };
        let c = out.entry(s.network.clone()).or_default();
        if let Some(b) = s.block {
            c.block = block_index(pool, b);
        }
        if let Some(ip) = s.address {
            c.addresses.insert(s.key.clone(), ip);
            if let Some(m) = s.mac.as_deref().and_then(|m| m.parse().ok()) {
                c.macs.insert(s.key.clone(), m);
            }
        }
    }
    for (net, c) in seed {
        out.entry(net.clone()).or_insert_with(|| c.clone());
    }
    out
}

/// The objects that hold `mine` (this host's claims by network). A VM NIC's MAC is the one
/// its claim fixed, the pool's MAC for an address carried over from `seed`, else
/// [`ipam::address_mac`].
pub(super) fn wanted(
    mine: &BTreeMap<String, HostClaims>,
    pools: &BTreeMap<String, Pool>,
    vino: &ClaimVino,
    holder: &Holder,
    seed: &BTreeMap<String, HostClaims>,
) -> BTreeMap<String, VinoPoolClaim> {
    let mut out = BTreeMap::new();
    for (net, c) in mine {
        let Some(pool) = pools.get(net) else {
            continue;
        };
        let unit = |key: &str| VinoPoolClaimSpec {
            pool: pool_key(pool),
            node: holder.name.clone(),
            vino: vino.clone(),
            network: net.clone(),
            key: key.to_string(),
            ..Default::default()
        };
        if let (Some(span), Some(i)) = (pool.dhcp, c.block) {
            let range = span.block(i);
            let block = ClaimBlock {
                start: range.start,
                size: range.len() as u32,
            };
            let spec = VinoPoolClaimSpec {
                block: Some(block),
                ..unit(DHCP_KEY)
            };
            out.insert(block_claim_name(block), object(spec, holder));
        }
        for (key, ip) in &c.addresses {
            let carried = seed.get(net).and_then(|s| s.addresses.get(key)) == Some(ip);
            let mac = (*key != ipam::bridge_key()).then(|| {
                c.macs
                    .get(key)
                    .copied()
                    .or_else(|| carried.then(|| pool.mac_for(*ip)).flatten())
                    .unwrap_or_else(|| ipam::address_mac(pool, *ip))
                    .to_string()
            });
            let spec = VinoPoolClaimSpec {
                address: Some(*ip),
                mac,
                ..unit(key)
            };
            out.insert(address_claim_name(*ip), object(spec, holder));
        }
    }
    out
}

/// What others hold in the pools of the Vino's networks, as entries the planner treats as
/// taken: addresses, the blocks of the network's DHCP span they overlap, and the addresses of
/// the static range their blocks cover.
pub(super) fn taken(
    foreign: &[VinoPoolClaim],
    pools: &BTreeMap<String, Pool>,
) -> BTreeMap<String, NetworkClaims> {
    let mut out: BTreeMap<String, NetworkClaims> = BTreeMap::new();
    for (net, pool) in pools {
        let entries = out.entry(net.clone()).or_default();
        for o in foreign.iter().filter(|o| o.spec.pool == pool_key(pool)) {
            let name = format!("claim {}", o.metadata.name.as_deref().unwrap_or_default());
            let covered = match (o.spec.address, o.spec.block) {
                (Some(ip), _) => AddrRange { start: ip, end: ip },
                (None, Some(b)) => AddrRange {
                    start: b.start,
                    end: Ipv4Addr::from(u32::from(b.start).saturating_add(b.size.max(1) - 1)),
                },
                (None, None) => continue,
            };
            let mut held = HostClaims::default();
            for v in covered.iter().filter(|v| pool.static_range.contains(*v)) {
                held.addresses.insert(v.to_string(), Ipv4Addr::from(v));
            }
            entries.insert(name.clone(), held);
            let Some(span) = pool.dhcp else { continue };
            for i in (0..span.block_count()).filter(|i| span.block(*i).overlaps(&covered)) {
                let block = HostClaims {
                    block: Some(i),
                    ..Default::default()
                };
                entries.insert(format!("{name} block {i}"), block);
            }
        }
    }
    out
}

/// The claim object for `spec`, named for its unit, labelled and owned by the holder's Node.
fn object(spec: VinoPoolClaimSpec, holder: &Holder) -> VinoPoolClaim {
    let name = match (spec.address, spec.block) {
        (Some(ip), _) => address_claim_name(ip),
        (None, Some(b)) => block_claim_name(b),
        (None, None) => String::new(),
    };
    let labels = BTreeMap::from([
        (format!("{LABEL_PREFIX}node"), label_value(&holder.name)),
        (
            format!("{LABEL_PREFIX}pool"),
            label_value(&spec.pool.replace('/', "-")),
        ),
        (
            format!("{LABEL_PREFIX}cr-name"),
            label_value(&spec.vino.name),
        ),
        (
            format!("{LABEL_PREFIX}cr-namespace"),
            label_value(&spec.vino.namespace),
        ),
    ]);
    let mut o = VinoPoolClaim::new(&name, spec);
    o.metadata = ObjectMeta {
        name: Some(name),
        labels: Some(labels),
        owner_references: Some(vec![holder.owner_reference()]),
        ..Default::default()
    };
    o
}

/// The index of `block` in the pool's DHCP span, if it is exactly one of its blocks.
fn block_index(pool: &Pool, block: ClaimBlock) -> Option<u32> {
    let span = pool.dhcp?;
    let offset = u32::from(block.start).checked_sub(u32::from(span.range.start))?;
    let size = u32::try_from(span.block_size()).ok()?;
    let i = offset / size;
    (block.size == size && offset % size == 0 && i < span.block_count()).then_some(i)
}

#[cfg(test)]
mod tests;
