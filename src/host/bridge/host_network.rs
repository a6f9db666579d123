//! The host's own network read from the kernel: every interface that is not one of vinod's
//! bridges or a VM's tap, with its addresses, and the main table's IPv4 routes that do not
//! leave by one of vinod's bridges.

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::{IpNet, Ipv4Net};
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::kernel::{Link, links};
use crate::plan::{HostInterface, HostNetwork, HostRoute};

/// Reads the host's own network.
pub async fn observe(handle: &Handle) -> Result<HostNetwork, rtnetlink::Error> {
    let all = links(handle).await?;
    let theirs: BTreeMap<u32, &Link> = all
        .iter()
        .filter(|l| l.owner().is_none() && !l.is_tap())
        .map(|l| (l.index, l))
        .collect();
    let messages: Vec<AddressMessage> = handle.address().get().execute().try_collect().await?;
    let mut addresses: BTreeMap<u32, Vec<IpNet>> = BTreeMap::new();
    for m in &messages {
        if let Some(net) = address_of(m) {
            addresses.entry(m.header.index).or_default().push(net);
        }
    }
    let interfaces = theirs
        .values()
        .map(|l| HostInterface {
            name: l.name.clone(),
            addresses: addresses.remove(&l.index).unwrap_or_default(),
        })
        .collect();
    let dump = RouteMessageBuilder::<std::net::Ipv4Addr>::new().build();
    let routes: Vec<RouteMessage> = handle.route().get(dump).execute().try_collect().await?;
    let routes = routes
        .iter()
        .filter(|r| table_of(r) == u32::from(RouteHeader::RT_TABLE_MAIN))
        .filter_map(|r| {
            let destination = destination_of(r)?;
            match interface_of(r) {
                // Leaves by one of vinod's bridges (or a VM's tap): vinod's own route.
                Some(index) => theirs.get(&index).map(|l| HostRoute {
                    destination,
                    interface: l.name.clone(),
                }),
                None => Some(HostRoute {
                    destination,
                    interface: String::new(),
                }),
            }
        })
        .collect();
    Ok(HostNetwork { interfaces, routes })
}

/// An interface's address with its prefix; IPv6 link-local addresses (every interface that is
/// up has one) are left out.
fn address_of(message: &AddressMessage) -> Option<IpNet> {
    let ip = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let ip = ip.or_else(|| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })?;
    if let IpAddr::V6(v6) = ip
        && v6.is_unicast_link_local()
    {
        return None;
    }
    IpNet::new(ip, message.header.prefix_len).ok()
}

fn table_of(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

fn destination_of(route: &RouteMessage) -> Option<Ipv4Net> {
    let ip = route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
            _ => None,
        })
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
    Ipv4Net::new(ip, route.header.destination_prefix_length).ok()
}

/// The interface a route leaves by (the first next hop's for a multipath route).
fn interface_of(route: &RouteMessage) -> Option<u32> {
    route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(index) => Some(*index),
        RouteAttribute::MultiPath(hops) => hops.first().map(|h| h.interface_index),
        _ => None,
    })
}
