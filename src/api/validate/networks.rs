//! Validation of `spec.networks`: addresses, ranges and their order within the subnet, the
//! DHCP span and MAC prefix of each network, and what networks may not share.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{Checker, DEFAULT_BIT_STEP, DEFAULT_MAC_PREFIX, bridge_name};
use crate::api::vino::{Network, VinoSpec};
use crate::ipam::{AddrRange, DhcpSpan, Pool};
use crate::value::syntax::{Mac, is_dns_label, is_ifname};

impl Checker {
    pub(super) fn networks(&mut self, spec: &VinoSpec) -> BTreeMap<String, Pool> {
        let mut pools = BTreeMap::new();
        let mut bridges: BTreeMap<&str, usize> = BTreeMap::new();
        if spec.networks.len() > 16 {
            self.err(
                "spec.networks",
                format!("{} networks; at most 16", spec.networks.len()),
            );
        }
        for (i, net) in spec.networks.iter().enumerate() {
            let f = format!("spec.networks[{i}]");
            if net.name.len() > 40 || !is_dns_label(&net.name) {
                self.err(
                    format!("{f}.name"),
                    format!(
                        "{:?} must be a DNS label of at most 40 characters",
                        net.name
                    ),
                );
            }
            if pools.contains_key(&net.name) {
                self.err(
                    format!("{f}.name"),
                    format!("duplicate network name {:?}", net.name),
                );
                continue;
            }
            let bridge = bridge_name(net);
            if !is_ifname(bridge) {
                self.err(
                    format!("{f}.bridgeName"),
                    format!("{bridge:?} is not a Linux interface name (1-15 of [A-Za-z0-9_.-])"),
                );
            } else if let Some(j) = bridges.insert(bridge, i) {
                self.err(
                    format!("{f}.bridgeName"),
                    format!("bridge {bridge:?} is already used by spec.networks[{j}]"),
                );
            }
            if let Some(phys) = &net.physical_interface
                && !is_ifname(phys)
            {
                self.err(
                    format!("{f}.physicalInterface"),
                    format!("{phys:?} is not a Linux interface name"),
                );
            }
            if let Some(mtu) = net.mtu
                && !(68..=65535).contains(&mtu)
            {
                self.err(format!("{f}.mtu"), format!("{mtu} is outside 68-65535"));
            }
            for (j, dns) in net.dns_servers.iter().enumerate() {
                if dns.parse::<std::net::IpAddr>().is_err() {
                    self.err(
                        format!("{f}.dns_servers[{j}]"),
                        format!("{dns:?} is not an IP address"),
                    );
                }
            }
            for (j, r) in net.routes.iter().enumerate() {
                let rf = format!("{f}.routes[{j}]");
                if r.network.parse::<Ipv4Addr>().is_err() {
                    self.err(
                        format!("{rf}.network"),
                        format!("{:?} is not an IPv4 address", r.network),
                    );
                }
                if !is_netmask(&r.netmask) {
                    self.err(
                        format!("{rf}.netmask"),
                        format!("{:?} is not a dotted-quad netmask", r.netmask),
                    );
                }
                if r.gateway != "$vinobridge" && r.gateway.parse::<Ipv4Addr>().is_err() {
                    self.err(
                        format!("{rf}.gateway"),
                        format!("{:?} is neither an IPv4 address nor $vinobridge", r.gateway),
                    );
                }
            }
            if let Some(pool) = self.pool(&f, net) {
                pools.insert(net.name.clone(), pool);
            }
        }
        self.cross_network(spec, &pools);
        pools
    }

    pub(super) fn pool(&mut self, f: &str, net: &Network) -> Option<Pool> {
        let before = self.errors.len();
        let subnet = match net.subnet.parse::<Ipv4Net>() {
            Ok(s) => Some(s),
            Err(_) => {
                let why = if net.subnet.parse::<ipnet::Ipv6Net>().is_ok() {
                    "IPv6 networks are not supported; use an IPv4 CIDR"
                } else {
                    "not a CIDR such as 192.168.2.0/24"
                };
                self.err(format!("{f}.subnet"), format!("{:?}: {why}", net.subnet));
                None
            }
        };
        let static_range = self.range(
            f,
            "staticAllocationStart",
            &net.static_allocation_start,
            "staticAllocationStop",
            &net.static_allocation_stop,
            subnet,
        );
        let dhcp_range = match (&net.dhcp_allocation_start, &net.dhcp_allocation_stop) {
            (None, None) => None,
            (Some(a), Some(b)) => {
                self.range(f, "dhcpAllocationStart", a, "dhcpAllocationStop", b, subnet)
            }
            _ => {
                self.err(
                    format!("{f}.dhcpAllocationStart"),
                    "dhcpAllocationStart and dhcpAllocationStop go together",
                );
                None
            }
        };
        let bit_step = net.instance_subnet_bit_step.unwrap_or(DEFAULT_BIT_STEP);
        if bit_step > 16 {
            self.err(
                format!("{f}.instanceSubnetBitStep"),
                format!("{bit_step} is above 16"),
            );
        }
        let mac_text = net.mac_prefix.as_deref().unwrap_or(DEFAULT_MAC_PREFIX);
        let mac_base = match mac_text.parse::<Mac>() {
            Ok(m) if !m.is_unicast() => {
                self.err(
                    format!("{f}.macPrefix"),
                    format!("{mac_text} is a multicast address (low bit of the first octet set)"),
                );
                None
            }
            Ok(m) => Some(m),
            Err(e) => {
                self.err(format!("{f}.macPrefix"), e);
                None
            }
        };
        if let (Some(s), Some(d)) = (static_range, dhcp_range)
            && s.overlaps(&d)
        {
            self.err(
                format!("{f}.staticAllocationStart"),
                format!("static range {s} overlaps the DHCP span {d}"),
            );
        }
        let dhcp = dhcp_range.map(|range| DhcpSpan {
            range,
            bit_step: bit_step.min(16),
        });
        if let Some(span) = dhcp
            && bit_step <= 16
            && span.block_count() == 0
        {
            self.err(
                format!("{f}.instanceSubnetBitStep"),
                format!(
                    "the DHCP span {} holds {} addresses, less than one block of 2^{bit_step}",
                    span.range,
                    span.range.len()
                ),
            );
        }
        if let (Some(m), Some(s)) = (mac_base, static_range)
            && m.offset(s.len() - 1).is_none()
        {
            self.err(
                format!("{f}.macPrefix"),
                format!("{m} plus {} addresses runs past ff:ff:ff:ff:ff:ff", s.len()),
            );
        }
        if self.errors.len() > before {
            return None;
        }
        Some(Pool {
            network: net.name.clone(),
            subnet: subnet?,
            static_range: static_range?,
            dhcp,
            mac_base: mac_base?,
        })
    }

    pub(super) fn range(
        &mut self,
        f: &str,
        start_name: &str,
        start: &str,
        stop_name: &str,
        stop: &str,
        subnet: Option<Ipv4Net>,
    ) -> Option<AddrRange> {
        let a = self.addr(f, start_name, start, subnet);
        let b = self.addr(f, stop_name, stop, subnet);
        let (a, b) = (a?, b?);
        if a > b {
            self.err(
                format!("{f}.{stop_name}"),
                format!("{start_name} {a} is after {stop_name} {b}"),
            );
            return None;
        }
        Some(AddrRange { start: a, end: b })
    }

    pub(super) fn addr(
        &mut self,
        f: &str,
        name: &str,
        text: &str,
        subnet: Option<Ipv4Net>,
    ) -> Option<Ipv4Addr> {
        let Ok(ip) = text.parse::<Ipv4Addr>() else {
            self.err(
                format!("{f}.{name}"),
                format!("{text:?} is not an IPv4 address"),
            );
            return None;
        };
        let net = subnet?;
        if !net.contains(&ip) {
            self.err(
                format!("{f}.{name}"),
                format!("{ip} is outside subnet {}", net.trunc()),
            );
            return None;
        }
        let t = net.trunc();
        if net.prefix_len() < 31 && (ip == t.network() || ip == t.broadcast()) {
            self.err(
                format!("{f}.{name}"),
                format!("{ip} is the network or broadcast address of {t}"),
            );
            return None;
        }
        Some(ip)
    }

    pub(super) fn cross_network(&mut self, spec: &VinoSpec, pools: &BTreeMap<String, Pool>) {
        let list: Vec<(usize, &Pool)> = spec
            .networks
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                pools
                    .get(&n.name)
                    .filter(|p| p.network == n.name)
                    .map(|p| (i, p))
            })
            .collect();
        for (x, (i, a)) in list.iter().enumerate() {
            for (j, b) in list.iter().skip(x + 1) {
                let (na, nb) = (a.subnet.trunc(), b.subnet.trunc());
                if na.contains(&nb) || nb.contains(&na) {
                    self.err(
                        format!("spec.networks[{j}].subnet"),
                        format!("{nb} overlaps spec.networks[{i}].subnet {na}"),
                    );
                }
                let ((a0, a1), (b0, b1)) = (a.mac_span(), b.mac_span());
                if a0 <= b1 && b0 <= a1 {
                    self.err(format!("spec.networks[{j}].macPrefix"), format!("MACs {}.. of this network overlap those of spec.networks[{i}] ({}..); give each network its own macPrefix", b.mac_base, a.mac_base));
                }
            }
        }
    }
}

fn is_netmask(s: &str) -> bool {
    s.parse::<Ipv4Addr>().is_ok_and(|m| {
        let v = u32::from(m);
        v.leading_ones() + v.trailing_zeros() == 32
    })
}
