//! A network's address pool: subnet, static range, DHCP span and MAC base.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::value::syntax::Mac;

/// An inclusive range of IPv4 addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrRange {
    /// First address.
    pub start: Ipv4Addr,
    /// Last address.
    pub end: Ipv4Addr,
}

impl AddrRange {
    /// Whether the address value `v` is in the range.
    pub fn contains(&self, v: u32) -> bool {
        u32::from(self.start) <= v && v <= u32::from(self.end)
    }

    /// Number of addresses.
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.end)) - u64::from(u32::from(self.start)) + 1
    }

    /// Always false: a range holds at least its start.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Address values in order.
    pub fn iter(&self) -> impl Iterator<Item = u32> {
        u32::from(self.start)..=u32::from(self.end)
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &AddrRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// The part of a network cut into per-host DHCP blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpSpan {
    /// The whole span.
    pub range: AddrRange,
    /// Each block holds 2^bit_step addresses.
    pub bit_step: u32,
}

impl DhcpSpan {
    /// Addresses per block.
    pub fn block_size(&self) -> u64 {
        1u64 << self.bit_step
    }

    /// Complete blocks in the span; a partial tail is not used.
    pub fn block_count(&self) -> u32 {
        u32::try_from(self.range.len() / self.block_size()).unwrap_or(u32::MAX)
    }

    /// The addresses of block `index`.
    pub fn block(&self, index: u32) -> AddrRange {
        let start = u64::from(u32::from(self.range.start)) + u64::from(index) * self.block_size();
        let end = start + self.block_size() - 1;
        // Both fit: the block lies inside the span, which lies inside IPv4.
        AddrRange {
            start: Ipv4Addr::from(start as u32),
            end: Ipv4Addr::from(end as u32),
        }
    }
}

/// One network's addressing, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// Network name.
    pub network: String,
    /// The subnet as written (ViNO accepts host bits, e.g. 192.168.2.0/20).
    pub subnet: Ipv4Net,
    /// Static range for bridges and NICs.
    pub static_range: AddrRange,
    /// Per-host DHCP blocks, if the network has a span.
    pub dhcp: Option<DhcpSpan>,
    /// MAC of the first static address; address n of the range gets `mac_base + n`.
    pub mac_base: Mac,
}

impl Pool {
    /// Whether `v` is the subnet's network or broadcast address, which no host may use.
    pub fn is_reserved(&self, v: u32) -> bool {
        let net = self.subnet.trunc();
        self.subnet.prefix_len() < 31
            && (v == u32::from(net.network()) || v == u32::from(net.broadcast()))
    }

    /// The MAC that goes with static address `ip`, if `ip` is in the static range.
    pub fn mac_for(&self, ip: Ipv4Addr) -> Option<Mac> {
        let v = u32::from(ip);
        self.static_range
            .contains(v)
            .then(|| u64::from(v - u32::from(self.static_range.start)))
            .and_then(|offset| self.mac_base.offset(offset))
    }

    /// The MACs this pool can hand out, as an inclusive range of values.
    pub fn mac_span(&self) -> (u64, u64) {
        let first = self.mac_base.as_u64();
        (first, first.saturating_add(self.static_range.len() - 1))
    }

    /// The subnet's netmask.
    pub fn netmask(&self) -> Ipv4Addr {
        self.subnet.netmask()
    }
}
