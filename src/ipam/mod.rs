//! Address management, pure part: cutting a network's DHCP span into per-host blocks, and
//! handing out static addresses (with MACs derived from them) to host bridges and VM NICs.
//!
//! Claims are the persisted truth (in the cluster or a local state file). Given every host's
//! claims, [`allocate`] computes one host's claims: it keeps every valid claim it already has,
//! takes the lowest free block and addresses for new requests, and drops what it no longer
//! requests. The result depends only on the claim set, never on the order claims were made.

mod pool;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

pub use pool::{AddrRange, DhcpSpan, Pool};

/// Errors of address allocation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    /// Every DHCP block of the network is claimed by other hosts.
    #[error(
        "network {network}: no free DHCP block for host {host}: all {blocks} blocks of {size} addresses in {span} are claimed"
    )]
    BlocksExhausted {
        network: String,
        host: String,
        blocks: u32,
        size: u64,
        span: AddrRange,
    },
    /// The static range has fewer free addresses than requested.
    #[error(
        "network {network}: static range {range} is exhausted: {wanted} addresses wanted by host {host}, {free} free"
    )]
    StaticExhausted {
        network: String,
        host: String,
        range: AddrRange,
        wanted: usize,
        free: u64,
    },
}

/// What one host holds on one network.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostClaims {
    /// Index of this host's DHCP block in the span, if the network has a span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<u32>,
    /// Static addresses by claim key: `bridge` for the host's bridge, `<vm>/<interface>` for
    /// a VM NIC ([`bridge_key`], [`nic_key`]).
    #[serde(default)]
    pub addresses: BTreeMap<String, Ipv4Addr>,
}

/// Claims of all hosts on one network, by host name.
pub type NetworkClaims = BTreeMap<String, HostClaims>;

/// Claim key of a host's bridge address.
pub fn bridge_key() -> String {
    "bridge".to_string()
}

/// Claim key of a VM NIC's address: VM name and interface name.
pub fn nic_key(vm: &str, interface: &str) -> String {
    format!("{vm}/{interface}")
}

/// Computes `host`'s claims on `pool` for the claim keys in `wanted`, given every host's
/// current claims (`all`, which may include `host`'s own).
///
/// Existing claims of `host` that are still wanted, inside the pool and not also held by a
/// host whose name sorts first are kept; the rest of `wanted` get the lowest free addresses
/// in claim-key order. The block works the same way.
pub fn allocate(
    pool: &Pool,
    all: &NetworkClaims,
    host: &str,
    wanted: &BTreeSet<String>,
) -> Result<HostClaims, IpamError> {
    let others: Vec<(&String, &HostClaims)> =
        all.iter().filter(|(h, _)| h.as_str() != host).collect();
    let own = all.get(host).cloned().unwrap_or_default();

    let block = match &pool.dhcp {
        None => None,
        Some(span) => Some(choose_block(pool, span, &others, host, own.block)?),
    };

    // An address held by another host is taken unless this host wins the tie on name order.
    let mut taken: BTreeSet<u32> = BTreeSet::new();
    let mut contested: BTreeMap<u32, &str> = BTreeMap::new();
    for (other, claims) in &others {
        for ip in claims.addresses.values() {
            let v = u32::from(*ip);
            taken.insert(v);
            let e = contested.entry(v).or_insert(other.as_str());
            if other.as_str() < *e {
                *e = other.as_str();
            }
        }
    }

    let mut addresses = BTreeMap::new();
    let mut used = BTreeSet::new();
    for (key, ip) in &own.addresses {
        let v = u32::from(*ip);
        let keep = wanted.contains(key)
            && pool.static_range.contains(v)
            && !used.contains(&v)
            && contested.get(&v).is_none_or(|winner| host < *winner);
        if keep {
            addresses.insert(key.clone(), *ip);
            used.insert(v);
        }
    }
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|k| !addresses.contains_key(*k))
        .collect();
    let mut free = pool
        .static_range
        .iter()
        .filter(|v| !used.contains(v) && !taken.contains(v) && !pool.is_reserved(*v));
    for key in &missing {
        match free.next() {
            Some(v) => {
                addresses.insert((*key).clone(), Ipv4Addr::from(v));
            }
            None => {
                let free_count = pool
                    .static_range
                    .iter()
                    .filter(|v| !taken.contains(v) && !pool.is_reserved(*v))
                    .count() as u64;
                return Err(IpamError::StaticExhausted {
                    network: pool.network.clone(),
                    host: host.to_string(),
                    range: pool.static_range,
                    wanted: wanted.len(),
                    free: free_count,
                });
            }
        }
    }
    Ok(HostClaims { block, addresses })
}

fn choose_block(
    pool: &Pool,
    span: &DhcpSpan,
    others: &[(&String, &HostClaims)],
    host: &str,
    current: Option<u32>,
) -> Result<u32, IpamError> {
    let count = span.block_count();
    let mut held: BTreeMap<u32, &str> = BTreeMap::new();
    for (other, claims) in others {
        if let Some(b) = claims.block {
            let e = held.entry(b).or_insert(other.as_str());
            if other.as_str() < *e {
                *e = other.as_str();
            }
        }
    }
    if let Some(b) = current
        && b < count
        && held.get(&b).is_none_or(|winner| host < *winner)
    {
        return Ok(b);
    }
    (0..count)
        .find(|b| !held.contains_key(b))
        .ok_or_else(|| IpamError::BlocksExhausted {
            network: pool.network.clone(),
            host: host.to_string(),
            blocks: count,
            size: span.block_size(),
            span: span.range,
        })
}

#[cfg(test)]
mod tests;
