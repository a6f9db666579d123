//! Address management, pure part: cutting a network's DHCP span into per-host blocks, and
//! handing out static addresses (with MACs derived from them) to host bridges and VM NICs.
//!
//! Claims are the persisted truth (in the cluster or a local state file). Given what this host
//! holds and what others hold, [`allocate`] computes one host's claims: it keeps every valid
//! claim it already has (an address held is never given up for another holder), takes free
//! blocks and addresses for new requests, and drops what it no longer requests. The result
//! depends only on the claim set, never on the order claims were made.

mod pool;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

pub use pool::{AddrRange, DhcpSpan, Pool};

use crate::value::syntax::Mac;

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
    /// The MAC of an address, by claim key, where the claim fixed it ([`address_mac`] for
    /// claims taken in a cluster); an address without one gets [`Pool::mac_for`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "mac_text")]
    #[schemars(with = "BTreeMap<String, String>")]
    pub macs: BTreeMap<String, Mac>,
    /// Where the host takes new units, when it knows: part `index` of `parts` equal parts of
    /// the static range and of the DHCP blocks (its rank among the hosts that claim in the
    /// pool at the same time), so that those hosts reach for different units. Not stored.
    #[serde(skip)]
    #[schemars(skip)]
    pub share: Option<Share>,
}

/// Part `index` of `parts` equal parts of a pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Share {
    /// Which part, from 0.
    pub index: u32,
    /// How many parts.
    pub parts: u32,
}

impl Share {
    /// The first of `len` units (in order) of this part, if the share is valid.
    fn anchor(self, len: u64) -> Option<u64> {
        (self.parts > 0 && self.index < self.parts)
            .then(|| len * u64::from(self.index) / u64::from(self.parts))
    }
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

/// Computes `host`'s claims on `pool` for the claim keys in `wanted`, given every holder's
/// current claims (`all`, keyed by holder, which may include `host`'s own).
///
/// Existing claims of `host` that are still wanted and inside the pool are kept, whoever else
/// claims the same unit (two holders of one unit can only come from a forged entry, and
/// giving a held address up would renumber running VMs). The rest of `wanted` get free
/// addresses in claim-key order: the lowest free ones while nobody else holds anything in the
/// pool, else the free ones from a point derived from the host's name on, so that hosts
/// claiming at the same moment rarely reach for the same unit. The block works the same way.
pub fn allocate(
    pool: &Pool,
    all: &NetworkClaims,
    host: &str,
    wanted: &BTreeSet<String>,
) -> Result<HostClaims, IpamError> {
    let others: Vec<&HostClaims> = all
        .iter()
        .filter(|(h, _)| h.as_str() != host)
        .map(|(_, c)| c)
        .collect();
    let own = all.get(host).cloned().unwrap_or_default();
    let share = own.share;
    let start = if others.is_empty() {
        0
    } else {
        name_point(host)
    };

    let block = match &pool.dhcp {
        None => None,
        Some(span) => Some(choose_block(
            pool, span, &others, host, own.block, start, share,
        )?),
    };

    let taken: BTreeSet<u32> = others
        .iter()
        .flat_map(|c| c.addresses.values().map(|ip| u32::from(*ip)))
        .collect();
    let mut addresses = BTreeMap::new();
    let mut macs = BTreeMap::new();
    let mut used = BTreeSet::new();
    for (key, ip) in &own.addresses {
        let v = u32::from(*ip);
        if wanted.contains(key) && pool.static_range.contains(v) && used.insert(v) {
            addresses.insert(key.clone(), *ip);
            if let Some(m) = own.macs.get(key) {
                macs.insert(key.clone(), *m);
            }
        }
    }
    let free: Vec<u32> = pool
        .static_range
        .iter()
        .filter(|v| !used.contains(v) && !taken.contains(v) && !pool.is_reserved(*v))
        .collect();
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|k| !addresses.contains_key(*k))
        .collect();
    if missing.len() > free.len() {
        return Err(IpamError::StaticExhausted {
            network: pool.network.clone(),
            host: host.to_string(),
            range: pool.static_range,
            wanted: wanted.len(),
            free: (free.len() + used.len()) as u64,
        });
    }
    // With a share: the first free address from the share's part of the range on, so losing a
    // unit moves the host only to the next one; else a point derived from the name.
    let first = match share.and_then(|s| s.anchor(pool.static_range.len())) {
        Some(offset) => {
            let anchor = u64::from(u32::from(pool.static_range.start)) + offset;
            free.partition_point(|v| u64::from(*v) < anchor) % free.len().max(1)
        }
        None => rotation(free.len(), start),
    };
    for (key, v) in missing.into_iter().zip(free.iter().cycle().skip(first)) {
        addresses.insert(key.clone(), Ipv4Addr::from(*v));
    }
    Ok(HostClaims {
        block,
        addresses,
        macs,
        share: None,
    })
}

/// The MAC of a NIC whose address `ip` was claimed in a cluster: the first two octets of the
/// pool's MAC prefix, then the four octets of the address. Since an address is claimed at
/// most once in the cluster, so is its MAC, across every Vino and network.
pub fn address_mac(pool: &Pool, ip: Ipv4Addr) -> Mac {
    let prefix = pool.mac_base.as_u64() & 0xffff_0000_0000;
    // 16 bits of prefix and 32 of address fit in 48.
    Mac::from_u64(prefix | u64::from(u32::from(ip))).unwrap_or(pool.mac_base)
}

/// A stable point in a pool derived from a host's name (FNV-1a).
fn name_point(host: &str) -> u32 {
    host.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Where to start among `len` free candidates for the point `start`.
fn rotation(len: usize, start: u32) -> usize {
    if len == 0 { 0 } else { start as usize % len }
}

fn choose_block(
    pool: &Pool,
    span: &DhcpSpan,
    others: &[&HostClaims],
    host: &str,
    current: Option<u32>,
    start: u32,
    share: Option<Share>,
) -> Result<u32, IpamError> {
    let count = span.block_count();
    if let Some(b) = current
        && b < count
    {
        return Ok(b);
    }
    let held: BTreeSet<u32> = others.iter().filter_map(|c| c.block).collect();
    let free: Vec<u32> = (0..count).filter(|b| !held.contains(b)).collect();
    let first = match share.and_then(|s| s.anchor(u64::from(count))) {
        Some(anchor) => free.partition_point(|b| u64::from(*b) < anchor) % free.len().max(1),
        None => rotation(free.len(), start),
    };
    free.get(first)
        .copied()
        .ok_or_else(|| IpamError::BlocksExhausted {
            network: pool.network.clone(),
            host: host.to_string(),
            blocks: count,
            size: span.block_size(),
            span: span.range,
        })
}

/// MACs by key, as text (`xx:xx:xx:xx:xx:xx`).
mod mac_text {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::value::syntax::Mac;

    pub fn serialize<S: Serializer>(macs: &BTreeMap<String, Mac>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(macs.iter().map(|(k, m)| (k, m.to_string())))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Mac>, D::Error> {
        BTreeMap::<String, String>::deserialize(d)?
            .into_iter()
            .map(|(k, m)| Ok((k, m.parse().map_err(D::Error::custom)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
